"""specs/sequence.arch against the same models written by hand in PyTorch.

The language models are d2l's RNNModel ("Concise implementation of recurrent neural
networks"): one nn.RNN, nn.GRU or nn.LSTM layer of 256 hidden units over one-hot characters
(a vocabulary of 28, 35 time steps), and an nn.Linear back to the vocabulary at every step,
here batch first. The CRNN is a small conv stack pooled to height 1, its columns as time
steps, a bidirectional nn.LSTM and a linear layer per step. For each network: the hand-built
model's state_dict loads into archspec's strictly (same names, same shapes), the parameter
counts agree (archspec's static count, the built module's, the hand-built one's), and the
outputs on a random batch are the same, in eval and in train mode. The compiled source
(`archspec compile`, imported as a module) gives the same outputs too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import archspec
from archspec import cli

torch = pytest.importorskip("torch")
nn = torch.nn

SPEC = Path(__file__).resolve().parent.parent / "specs" / "sequence.arch"


class LanguageModel(nn.Module):
    """d2l's RNNModel, batch first: the recurrent layer, then the linear layer on each step's
    hidden state (d2l reshapes to (T * N, hidden) first, which is the same)."""

    def __init__(self, cell: type[nn.RNNBase], vocab: int = 28, hidden: int = 256) -> None:
        super().__init__()
        self.rnn = cell(vocab, hidden, batch_first=True)
        self.linear = nn.Linear(hidden, vocab)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.linear(y)


class CRNN(nn.Module):
    """Four conv-bn-relu-pool stages (the last two pool the height only) on a 1 x 32 x 128
    image down to 256 x 1 x 32, the 32 columns as time steps of 256 features, a
    bidirectional LSTM and a linear layer at each step."""

    def __init__(self, classes: int = 37, hidden: int = 128) -> None:
        super().__init__()
        layers, channels = [], 1
        for out, pool in [(64, 2), (128, 2), (256, (2, 1)), (256, (4, 1))]:
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(pool)]
            channels = out
        self.cnn = nn.Sequential(*layers)
        self.rnn = nn.LSTM(256, hidden, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        x = self.cnn(x)  # N x 256 x 1 x 32
        x = x.squeeze(2).permute(0, 2, 1)  # N x 32 x 256
        y, _ = self.rnn(x)
        return self.linear(y)


MODELS = {"rnn_lm": lambda: LanguageModel(nn.RNN), "gru_lm": lambda: LanguageModel(nn.GRU),
          "lstm_lm": lambda: LanguageModel(nn.LSTM), "crnn": CRNN}
# torch's own parameter counts, per layer and direction gates * (h * (in + h) + 2h):
# 1 * (256 * (28 + 256) + 512) + 256 * 28 + 28 for the RNN language model, ...
COUNTS = {"rnn_lm": 73_216 + 7_196, "gru_lm": 3 * 73_216 + 7_196, "lstm_lm": 4 * 73_216 + 7_196}


def _randomised(module: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        for name, buf in module.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
    return module


def _compiled(tmp_path: Path, name: str) -> nn.Module:
    target = tmp_path / f"{name}.py"
    assert cli.main(["compile", str(SPEC), "--net", name, "-o", str(target)]) == 0
    loader = importlib.util.spec_from_file_location(f"compiled_{name}", target)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return getattr(module, name)()  # the compiled file's builder function


@pytest.mark.parametrize("name", list(MODELS))
def test_sequence_spec_is_the_hand_written_model(name, tmp_path):
    network = archspec.load(str(SPEC), net=name)
    reference = _randomised(MODELS[name]())
    built = archspec.build(str(SPEC), net=name)
    built.load_state_dict(reference.state_dict(), strict=True)
    count = sum(p.numel() for p in reference.parameters())
    assert network.params == count == sum(p.numel() for p in built.parameters())
    if name in COUNTS:
        assert count == COUNTS[name]
    compiled = _compiled(tmp_path, name)
    compiled.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn((3, *network.input_shape), generator=torch.Generator().manual_seed(1))
    for training in (False, True):
        for model in (reference, built, compiled):
            model.train(training)
        with torch.no_grad():
            want = reference(x)
            assert tuple(want.shape[1:]) == network.output_shape
            torch.testing.assert_close(built(x), want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(compiled(x), want, rtol=1e-5, atol=1e-5)


def test_language_models_are_one_recurrent_layer_then_a_linear_per_step():
    for name, cell in [("rnn_lm", "rnn"), ("gru_lm", "gru"), ("lstm_lm", "lstm")]:
        network = archspec.load(str(SPEC), net=name)
        assert network.input_shape == (35, 28) and network.output_shape == (35, 28)
        layers = list(network.layers())
        assert [(layer.path, layer.op.name, layer.out_shape) for layer in layers] == [
            ("rnn", cell, (35, 256)), ("linear", "linear", (35, 28))]
        # MACs: the recurrent weights once per step, the linear layer once per step
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
        assert layers[0].macs == 35 * gates * 256 * (28 + 256)
        assert layers[1].macs == 35 * 256 * 28
