// The chat: send messages, poll the thread, decide on requests. Talks to /api with the
// console's session cookie.
import { api } from "./api.js";
import { el, principal, renderEvent, statusLabel } from "./chat-view.js";

const FAST_MS = 700;
const SLOW_MS = 3000;
const HIDDEN_MS = 10000;

const data = JSON.parse(document.getElementById("console-data").textContent);
const $ = (id) => document.getElementById(id);
const ui = {
  title: $("thread-title"), status: $("thread-status"), agent: $("thread-agent"), cost: $("thread-cost"),
  id: $("thread-id"), timeline: $("timeline-link"), empty: $("empty-state"), messages: $("messages"),
  working: $("working"), notice: $("notice"), composer: $("composer"), text: $("message-text"),
  send: $("send"), scroller: $("scroller"), newThread: $("new-thread"),
};
const queued = el("ol", { class: "messages queued", "aria-label": "Messages being sent" });
ui.messages.after(queued);

const state = {
  principal: data.principal, // who this session signed in; the API acts as them
  label: data.user,
  threadId: null,
  lastSeq: 0,
  status: null,
  generation: 0, // bumps when the thread changes, so late answers are dropped
  items: new Map(), // inbox item id -> what we sent
  cards: new Map(), // request id -> RequestCard
  timer: null,
};

function notice(text) {
  ui.notice.textContent = text || "";
  ui.notice.hidden = !text;
}

function nearBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
}

function scrollDown() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

// ------------------------------------------------------------ thread state

function reset() {
  state.generation += 1;
  state.lastSeq = 0;
  state.status = null;
  state.items.clear();
  state.cards.clear();
  ui.messages.replaceChildren();
  queued.replaceChildren();
  ui.title.textContent = "New conversation";
  for (const node of [ui.status, ui.agent, ui.cost, ui.id, ui.timeline]) node.hidden = true;
  ui.working.hidden = true;
  notice("");
}

function open(threadId, { push }) {
  reset();
  state.threadId = threadId;
  ui.empty.hidden = Boolean(threadId);
  const url = threadId ? `/?thread=${encodeURIComponent(threadId)}` : "/";
  if (push) window.history.pushState({ thread: threadId }, "", url);
  schedule(0);
}

function header(thread) {
  ui.title.textContent = thread.title || "(untitled)";
  const [label, hint] = statusLabel(thread);
  ui.status.textContent = label;
  ui.status.title = hint;
  ui.status.dataset.status = thread.status;
  ui.status.className = `badge status-${thread.status}`;
  ui.agent.textContent = thread.agent ? `agent: ${thread.agent}` : "";
  ui.cost.textContent = `$${thread.cost_usd.toFixed(4)}`;
  ui.cost.title = "Total model cost of this thread";
  ui.id.textContent = thread.id;
  ui.timeline.href = `/threads/${encodeURIComponent(thread.id)}`;
  ui.status.hidden = ui.cost.hidden = ui.id.hidden = ui.timeline.hidden = false;
  ui.agent.hidden = !thread.agent;
  document.title = `${thread.title || thread.id} · opsloop console`;
}

function render(thread) {
  header(thread);
  state.status = thread.status;
  const follow = nearBottom();
  const ctx = { principal: state.principal, roles: data.roles, cards: state.cards, onDecide: decide };
  let added = false;
  for (const event of thread.events) {
    if (event.seq <= state.lastSeq) continue;
    if (event.kind === "user_message") shown(event);
    const node = renderEvent(event, ctx);
    if (node) ui.messages.append(node);
    state.lastSeq = event.seq;
    added = true;
  }
  ui.working.hidden = thread.status !== "running";
  if (added && follow) scrollDown();
}

// ------------------------------------------------------------ inbox items we sent

function track(itemId, what) {
  state.items.set(itemId, what);
}

// An item is settled once done or failed: "applied" means its turn is still under way.
const SETTLED = new Set(["done", "failed"]);

async function checkItems(generation) {
  const settled = [];
  for (const [id, what] of state.items) {
    const item = await api("GET", `/api/inbox/${id}`);
    if (generation !== state.generation) return [];
    if (SETTLED.has(item.status)) settled.push({ id, item, what });
  }
  return settled;
}

// A message of ours reached the log: its "sending…" placeholder goes (the first match).
function shown(event) {
  for (const [id, what] of state.items) {
    if (what.kind === "message" && what.text === event.text && what.principal === principal(event.sender)) {
      what.placeholder.remove();
      state.items.delete(id);
      return;
    }
  }
}

function settle({ id, item, what }) {
  if (!state.items.delete(id)) return; // already shown in the log
  if (what.kind === "message") {
    what.placeholder.remove();
    if (item.status === "failed") notice(`Your message was not accepted: ${item.error}`);
    return;
  }
  const card = state.cards.get(what.requestId);
  if (!card || !card.node.isConnected) return;
  if (item.status === "failed") {
    const listed = [...card.refusals.children].find((li) => li.dataset.reason === item.error);
    const whose = `${what.principal}'s ${VERB[what.decision]}`;
    card.busy(false);
    if (listed) {
      card.say(`${whose} was refused (see above).`, "error", what.principal);
      if (what.principal === state.principal) listed.classList.add("flash");
    } else {
      card.say(`${whose} was refused: ${item.error}`, "error", what.principal);
    }
    card.actingAs(state.principal);
  } else if (card.actions.isConnected) {
    card.busy(false);
    card.say("");
  }
}

// ------------------------------------------------------------ polling

function schedule(ms) {
  window.clearTimeout(state.timer);
  if (state.threadId) state.timer = window.setTimeout(poll, ms);
}

async function poll() {
  const generation = state.generation;
  const threadId = state.threadId;
  try {
    const settled = await checkItems(generation);
    const thread = await api("GET", `/api/threads/${encodeURIComponent(threadId)}`);
    if (generation !== state.generation) return;
    render(thread);
    settled.forEach(settle);
    if (ui.notice.dataset.kind === "network") { notice(""); delete ui.notice.dataset.kind; }
  } catch (error) {
    if (generation !== state.generation) return;
    if (error.status === 404) {
      ui.title.textContent = "Thread not found";
      notice(`There is no thread ${threadId}. Start a new one.`);
      return;
    }
    notice(`Could not reach opsloop (${error.message}); retrying…`);
    ui.notice.dataset.kind = "network";
  }
  const busy = state.status === "running" || state.items.size > 0;
  schedule(document.hidden ? HIDDEN_MS : busy ? FAST_MS : SLOW_MS);
}

// ------------------------------------------------------------ actions

const VERB = { approve: "approval", reject: "rejection", answer: "answer" };

// Decisions and messages carry no name: the API acts as whoever this session signed in.
async function decide(card, decision, comment, changes = null) {
  const who = state.principal;
  card.busy(true, `Sending your ${VERB[decision]} as ${who}…`, who);
  try {
    const body = { decision };
    if (comment) body.comment = comment;
    if (changes) body.changes = changes;
    const result = await api("POST", `/api/human-requests/${encodeURIComponent(card.id)}`, body);
    track(result.inbox_item, { kind: "decision", requestId: card.id, principal: who, decision });
  } catch (error) {
    card.busy(false);
    card.say(`Not sent (${who}'s ${VERB[decision]}): ${error.message}`, "error", who);
    card.actingAs(state.principal);
  }
  schedule(0);
}

async function send(text) {
  const placeholder = el("li", { class: "msg mine sending" },
    el("div", { class: "avatar", "aria-hidden": "true", text: "…" }),
    el("div", { class: "msg-body" }, el("div", { class: "msg-head" }, el("span", { class: "name", text: state.label }),
      el("span", { class: "tag", text: "sending…" })), el("div", { class: "msg-text", text })));
  ui.empty.hidden = true;
  queued.append(placeholder);
  scrollDown();
  try {
    let result;
    if (!state.threadId) {
      result = await api("POST", "/api/threads", { text });
      open(result.id, { push: true });
      queued.append(placeholder); // open() cleared the queue
    } else {
      result = await api("POST", `/api/threads/${encodeURIComponent(state.threadId)}/messages`, { text });
    }
    track(result.inbox_item, { kind: "message", placeholder, text, principal: state.principal });
    schedule(0);
    return true;
  } catch (error) {
    placeholder.remove();
    if (!state.threadId) ui.empty.hidden = false;
    notice(`Not sent: ${error.message}`);
    return false;
  }
}

ui.composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (!text) return;
  ui.send.disabled = true;
  notice("");
  if (await send(text)) {
    ui.text.value = "";
    ui.text.style.height = "";
  }
  ui.send.disabled = false;
  ui.text.focus();
});

ui.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.text.addEventListener("input", () => {
  ui.text.style.height = "";
  ui.text.style.height = `${Math.min(ui.text.scrollHeight, 200)}px`;
});

for (const chip of document.querySelectorAll("[data-example]")) {
  chip.addEventListener("click", () => {
    ui.text.value = chip.textContent;
    ui.text.focus();
  });
}

ui.newThread.addEventListener("click", () => {
  open(null, { push: true });
  ui.text.focus();
});

// Development identities only: the header's switch changed whom this session acts as.
document.addEventListener("opsloop:user", (event) => {
  state.principal = event.detail.principal;
  state.label = event.detail.user;
  // What a card said to the previous user (a refusal, say) is not news for this one.
  for (const card of state.cards.values()) card.actingAs(state.principal);
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) schedule(0);
});

window.addEventListener("popstate", () => {
  open(new URL(window.location.href).searchParams.get("thread"), { push: false });
});

open(new URL(window.location.href).searchParams.get("thread"), { push: false });
