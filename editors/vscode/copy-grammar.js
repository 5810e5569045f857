// Copies the TextMate grammar of ../textmate/ into syntaxes/: VS Code and vsce take only
// files inside the extension's folder. `npm install` (prepare) and `vsce package`
// (vscode:prepublish) run it.
"use strict";
const fs = require("fs");
const path = require("path");

const target = path.join(__dirname, "syntaxes");
fs.mkdirSync(target, { recursive: true });
fs.copyFileSync(path.join(__dirname, "..", "textmate", "arch.tmLanguage.json"),
                path.join(target, "arch.tmLanguage.json"));
