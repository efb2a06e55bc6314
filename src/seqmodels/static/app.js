// The demo page: POST /predict with {"text": ...}; tags as coloured chips (BIO spans outlined), the label's
// probabilities as bars, the model's /info below. Nothing is fetched from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);

function colour(tag) {  // the same colour for the same tag (or entity type), every time
  const name = tag.replace(/^[BI]-/, "");
  let hash = 0;
  for (const c of name) hash = (hash * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${hash}, 65%, 82%)`;
}

function chip(token, tag, probability) {
  const element = document.createElement("span");
  element.className = "chip";
  element.dataset.tag = tag;
  element.style.background = colour(tag);
  element.title = probability === undefined ? tag : `${tag} (p=${probability.toFixed(2)})`;
  const word = document.createElement("span");
  word.className = "word";
  word.textContent = token;
  const label = document.createElement("span");
  label.className = "tag";
  label.textContent = tag;
  element.append(word, label);
  return element;
}

function renderTokens(record) {
  const box = $("tokens");
  box.replaceChildren();
  if (!record.tags) return;
  const bio = record.tags.every((t) => t === "O" || /^[BI]-/.test(t));
  record.tags.forEach((tag, i) => {
    const element = chip(record.tokens[i], tag, record.tag_probs ? record.tag_probs[i] : undefined);
    if (bio && tag !== "O") element.classList.add("span", tag.startsWith("B-") ? "span-start" : "span-inside");
    box.append(element);
  });
}

function renderLabel(record) {
  const box = $("label");
  box.replaceChildren();
  if (!record.label) return;
  box.dataset.label = record.label;
  for (const [label, probability] of Object.entries(record.label_probs)) {
    const row = document.createElement("div");
    row.className = "label-row" + (label === record.label ? " chosen" : "");
    row.dataset.label = label;
    const name = document.createElement("span");
    name.className = "label-name";
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(probability * 20)}rem`;
    const value = document.createElement("span");
    value.className = "probability";
    value.textContent = probability.toFixed(3);
    row.append(name, bar, value);
    box.append(row);
  }
}

async function predict(event) {
  event.preventDefault();
  $("error").hidden = true;
  const response = await fetch("/predict", {
    method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({text: $("text").value}),
  });
  const answer = await response.json();
  if (!response.ok) {
    $("error").textContent = answer.error;
    $("error").hidden = false;
    $("result").hidden = true;
    return;
  }
  renderTokens(answer);
  renderLabel(answer);
  $("result").hidden = false;
  $("result").dataset.ready = "true";
}

$("form").addEventListener("submit", predict);
fetch("/info").then((r) => r.json()).then((info) => {
  $("info-text").textContent = JSON.stringify(info, null, 2);
});
