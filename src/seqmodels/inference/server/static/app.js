// The demo page: POST /predict with {"text": ...}, then one section per head of the model, in the order /info lists
// them: a head whose prediction has a value per token as coloured chips (BIO spans outlined), one with class
// probabilities as bars (their width exactly the probability), anything else as text. Nothing is fetched from
// anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const BAR_REM = 20;  // a probability of 1 is this wide

function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

function colour(tag) {  // the same colour for the same tag (or entity type), every time
  const name = tag.replace(/^[BI]-/, "");
  let hash = 0;
  for (const c of name) hash = (hash * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${hash}, 65%, 82%)`;
}

function chips(tokens, tags, probabilities) {
  const box = element("div", "chips");
  const bio = tags.every((t) => t === "O" || /^[BI]-/.test(t));
  tags.forEach((tag, i) => {
    const chip = element("span", "chip");
    chip.dataset.value = tag;
    chip.style.background = colour(tag);
    chip.title = probabilities ? `${tag} (p=${probabilities[i].toFixed(2)})` : tag;
    if (bio && tag !== "O") chip.classList.add("span", tag.startsWith("B-") ? "span-start" : "span-inside");
    chip.append(element("span", "word", tokens[i]), element("span", "tag", tag));
    box.append(chip);
  });
  return box;
}

function bars(chosen, probabilities) {
  const box = element("div", "bars");
  for (const [name, probability] of Object.entries(probabilities)) {
    const row = element("div", "bar-row" + (name === chosen ? " chosen" : ""));
    const bar = element("span", "bar");
    bar.dataset.class = name;
    bar.style.width = `${probability * BAR_REM}rem`;  // not rounded: 0.508 and 0.492 differ on screen
    row.append(element("span", "class-name", name), bar, element("span", "probability", probability.toFixed(3)));
    box.append(row);
  }
  return box;
}

function renderHead(name, head, record) {
  // head: what /info says of it; its prediction is its first field, the fields after it may qualify it
  const section = element("section", "head");
  section.dataset.head = name;
  section.append(element("h2", "head-name", name));
  const value = record[head.fields[0]];
  const extras = head.fields.slice(1).map((field) => record[field]);
  const perToken = extras.find((x) => Array.isArray(x) && x.every((p) => typeof p === "number"));
  const perClass = extras.find((x) => x && typeof x === "object" && !Array.isArray(x));
  if (Array.isArray(value) && value.length === record.tokens.length) {
    section.append(chips(record.tokens, value.map(String), perToken));
  } else if (perClass) {
    section.dataset.value = value;
    section.append(bars(value, perClass));
  } else {
    section.dataset.value = JSON.stringify(value);
    section.append(element("p", "value", value === null || value === undefined ? "—" : JSON.stringify(value)));
  }
  return section;
}

let info = null;
async function modelInfo() {
  if (!info) {
    const response = await fetch("/info");
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error);
    info = answer;
    $("info-text").textContent = JSON.stringify(info, null, 2);
  }
  return info;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("result").hidden = true;
}

async function predict(event) {
  event.preventDefault();
  $("error").hidden = true;
  try {
    const {heads} = await modelInfo();
    const response = await fetch("/predict", {
      method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({text: $("text").value}),
    });
    const answer = await response.json();
    if (!response.ok) return showError(answer.error);
    $("result").replaceChildren(...Object.entries(heads).map(([name, head]) => renderHead(name, head, answer)));
    $("result").hidden = false;
    $("result").dataset.ready = "true";
  } catch (error) {
    showError(error.message);
  }
}

$("form").addEventListener("submit", predict);
modelInfo().catch((error) => showError(error.message));
