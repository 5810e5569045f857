// Starts `archspec lsp` (the command in the `archspec.path` setting) for .arch files.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

const SUBCOMMAND = ["lsp"];
let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("archspec").get("path") || "archspec";
  const server = { command, args: SUBCOMMAND };
  client = new LanguageClient("archspec", "archspec", { run: server, debug: server }, {
    documentSelector: [{ language: "arch" }],
  });
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration((event) => {
    if (event.affectsConfiguration("archspec.path")) {
      vscode.window.showInformationMessage("archspec.path changed: reload the window to use it");
    }
  }));
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
