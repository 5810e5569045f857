// Tokenise files with a TextMate grammar, as VS Code does (vscode-textmate on the
// Oniguruma regex engine): node tokenize.js GRAMMAR.json FILE... prints, as JSON, for each
// file the tokens of each line: [start, end, scopes].
"use strict";
const fs = require("fs");
const path = require("path");
const oniguruma = require("vscode-oniguruma");
const textmate = require("vscode-textmate");

async function main(grammarPath, files) {
  const wasm = fs.readFileSync(path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer);
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async () => textmate.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
  });
  const grammar = await registry.loadGrammar("source.arch");
  const result = {};
  for (const file of files) {
    let state = textmate.INITIAL;
    result[file] = fs.readFileSync(file, "utf8").split("\n").map((line) => {
      const tokens = grammar.tokenizeLine(line, state);
      state = tokens.ruleStack;
      return tokens.tokens.map((t) => [t.startIndex, Math.min(t.endIndex, line.length), t.scopes]);
    });
  }
  process.stdout.write(JSON.stringify(result));
}

main(process.argv[2], process.argv.slice(3)).catch((error) => {
  process.stderr.write(String(error && error.stack || error) + "\n");
  process.exit(1);
});
