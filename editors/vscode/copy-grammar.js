// vsce packs only this folder, so the TextMate grammar of ../textmate is copied into it:
// `npm install` and `vsce package` run this (package.json's postinstall and vscode:prepublish).
const fs = require("fs");
const path = require("path");

const target = path.join(__dirname, "syntaxes", "arch.tmLanguage.json");
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.copyFileSync(path.join(__dirname, "..", "textmate", "arch.tmLanguage.json"), target);
