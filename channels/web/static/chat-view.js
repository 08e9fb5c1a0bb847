// How a thread's events look in the chat. Everything from the server goes in as text
// (textContent / text nodes), never as HTML.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

const pad = (n) => String(n).padStart(2, "0");

export function clock(iso) {
  const d = new Date(iso);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

function timeEl(iso) {
  return el("time", { datetime: iso, title: `${iso.replace("T", " ").slice(0, 19)} UTC` }, clock(iso));
}

function until(iso) {
  const minutes = Math.round((new Date(iso) - Date.now()) / 60000);
  if (minutes <= 0) return "overdue";
  return minutes < 90 ? `in ${minutes} min` : `in ${Math.round(minutes / 60)} h`;
}

export function principal(identity) {
  return identity ? `${identity.channel}:${identity.user_id}` : "expiry";
}

function initials(name) {
  const parts = name.split(/[-_.@\s]+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[1][0] : name.slice(0, 2);
  return letters.toUpperCase();
}

function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function args(arguments_) {
  const list = el("dl", { class: "args" });
  for (const [key, value] of Object.entries(arguments_ || {})) {
    const shown = typeof value === "string" ? value : JSON.stringify(value);
    list.append(el("dt", { text: key }), el("dd", {}, el("code", { text: shown })));
  }
  return list;
}

function inline(arguments_) {
  return Object.entries(arguments_ || {})
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join("  ");
}

function message({ who, tag, avatar, hueOf, at, text, mine, bot }) {
  const face = el("div", { class: `avatar${bot ? " bot" : ""}`, "aria-hidden": "true", text: avatar });
  face.style.setProperty("--hue", String(hue(hueOf)));
  return el(
    "li",
    { class: `msg${mine ? " mine" : ""}` },
    face,
    el(
      "div",
      { class: "msg-body" },
      el("div", { class: "msg-head" }, el("span", { class: "name", text: who }),
        tag ? el("span", { class: "tag", text: tag }) : null, timeAt(at)),
      el("div", { class: "msg-text", text }),
    ),
  );
}

const timeAt = (at) => (at ? timeEl(at) : null);

function line(kind, icon, ...children) {
  return el("li", { class: `line ${kind}` }, el("span", { class: "icon", "aria-hidden": "true", text: icon }), ...children);
}

const OUTCOME = { approve: "Approved", reject: "Rejected", answer: "Answered" };

const STATUS = {
  running: ["working", "the agent is working on it"],
  waiting: ["answered", "the agent answered; waiting for the next message"],
  paused: ["paused", "paused: nothing is pending; an operator can resume it"],
  failed: ["failed", "stopped on an error it could not recover from"],
  done: ["done", "closed for good"],
};

/** A thread's status in the console's words, and a tooltip; the API value stays as it is. */
export function statusLabel(thread) {
  const pending = thread.pending_requests || [];
  if (thread.status === "paused" && pending.length) {
    return pending.some((r) => r.type === "approval")
      ? ["waiting for approval", "a step waits for an approver's decision"]
      : ["waiting for an answer", "the agent asked a question and waits for the answer"];
  }
  return STATUS[thread.status] || [thread.status, `status ${thread.status}`];
}

export class RequestCard {
  constructor(event, roles, onDecide) {
    this.id = event.request_id;
    this.onDecide = onDecide;
    const approval = event.type === "approval";
    this.badge = el("span", { class: "badge status-paused", text: "pending" });
    this.kind = el("span", { class: "card-kind", text: approval ? "Approval needed" : "Question" });
    this.refusals = el("ul", { class: "refusals" });
    this.feedback = el("p", { class: "card-feedback", role: "status" });
    this.actions = el("div", { class: "card-actions" });
    this.outcome = el("p", { class: "card-outcome", hidden: true });
    const who = event.approvers.map((a) => {
      const members = a.startsWith("role:") ? roles[a.slice(5)] : null;
      return members && members.length ? `${a} (${members.join(", ")})` : a;
    });
    const facts = el("dl", { class: "card-facts" },
      el("dt", { text: approval ? "May approve" : "May answer" }), el("dd", { text: who.join("; ") || "nobody" }));
    if (event.requested_by) {
      const rule = event.four_eyes ? " · four-eyes: they may not approve it themselves" : "";
      facts.append(el("dt", { text: "Requested by" }), el("dd", { text: event.requested_by + rule }));
    }
    // Only while the request is open: once decided, the outcome line says what happened.
    this.expiry = [el("dt", { text: "Expires" }),
      el("dd", {}, timeEl(event.expires_at), ` UTC · ${until(event.expires_at)}`)];
    facts.append(...this.expiry);
    this.node = el(
      "li",
      { class: `card ${approval ? "approval" : "question"}`, "data-request": this.id },
      el("div", { class: "card-head" },
        this.kind,
        el("code", { class: "muted", text: this.id }), this.badge),
      el("p", { class: "card-question", text: event.question }),
      approval ? el("div", { class: "card-tool" }, el("code", { class: "tool-name", text: event.tool }), args(event.arguments)) : null,
      facts, this.refusals, this.actions, this.feedback, this.outcome,
    );
    if (approval) this.approvalButtons();
    else this.questionButtons(event.options);
  }

  approvalButtons() {
    const reason = el("input", { type: "text", class: "reason", placeholder: "Why reject? (required)", maxlength: 10000, "aria-label": "Reason for rejecting" });
    const form = el("form", { class: "reject-form", hidden: true },
      reason,
      el("button", { type: "submit", class: "button danger", text: "Reject" }),
      el("button", { type: "button", class: "button ghost", text: "Cancel", onclick: () => { form.hidden = true; buttons.hidden = false; } }));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!reason.value.trim()) { this.say("A rejection needs a reason.", "error"); reason.focus(); return; }
      this.onDecide(this, "reject", reason.value.trim());
    });
    const buttons = el("div", { class: "button-row" },
      el("button", { type: "button", class: "button approve", text: "Approve", onclick: () => this.onDecide(this, "approve", null) }),
      el("button", { type: "button", class: "button danger-outline", text: "Reject",
        onclick: () => { buttons.hidden = true; form.hidden = false; reason.focus(); } }));
    this.actions.append(buttons, form);
  }

  questionButtons(options) {
    const answer = el("input", { type: "text", class: "reason", placeholder: "Your answer", maxlength: 10000, "aria-label": "Answer" });
    const form = el("form", { class: "answer-form" }, answer, el("button", { type: "submit", class: "button primary", text: "Answer" }));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (answer.value.trim()) this.onDecide(this, "answer", answer.value.trim());
    });
    const chips = options.map((o) => el("button", { type: "button", class: "chip", text: o, onclick: () => this.onDecide(this, "answer", o) }));
    if (chips.length) this.actions.append(el("div", { class: "button-row" }, chips));
    this.actions.append(form);
  }

  busy(on, text, actor = null) {
    for (const b of this.actions.querySelectorAll("button, input")) b.disabled = on;
    if (on) this.say(text, "info", actor);
  }

  // A note under the buttons. One with an ``actor`` (the principal it was about) only
  // shows while the console acts as that principal: it is theirs, not whoever acts next.
  say(text, tone, actor = null) {
    this.note = { text: text || "", tone: tone || "", actor };
    this.feedback.textContent = this.note.text;
    this.feedback.className = `card-feedback ${this.note.tone}`;
    this.feedback.dataset.actor = actor || "";
  }

  actingAs(user) {
    const note = this.note;
    const shown = !note || !note.actor || note.actor === user;
    this.feedback.textContent = shown && note ? note.text : "";
  }

  refuse(event) {
    const item = el("li", { "data-reason": event.reason },
      el("strong", { text: `Refused for ${principal(event.actor)}` }), " at ", timeEl(event.at), ": ",
      el("span", { text: event.reason }));
    this.refusals.append(item);
    return item;
  }

  hasRefusal(reason) {
    return [...this.refusals.children].some((li) => li.dataset.reason === reason);
  }

  resolve(event) {
    this.actions.remove();
    this.feedback.remove();
    for (const node of this.expiry) node.remove();
    const word = event.actor ? OUTCOME[event.decision] : "Expired";
    this.badge.textContent = event.actor ? word.toLowerCase() : "expired";
    this.badge.className = `badge decision-${event.decision}`;
    this.node.classList.add("resolved", `decision-${event.decision}`);
    this.outcome.hidden = false;
    this.kind.textContent = this.kind.textContent === "Question" ? "Question" : "Approval";
    this.outcome.append(
      el("strong", { text: event.actor ? `${word} by ${principal(event.actor)}` : "Expired (counts as rejected)" }),
      " at ", timeEl(event.at), " UTC",
    );
    if (event.comment) this.outcome.append(el("span", { class: "comment", text: ` — “${event.comment}”` }));
  }
}

// One event as chat elements. Returns the node to append, or null (e.g. it updated a card).
export function renderEvent(event, ctx) {
  switch (event.kind) {
    case "user_message": {
      const id = event.sender.user_id;
      return message({ who: event.sender.display_name || id, tag: event.source || principal(event.sender),
        avatar: initials(event.sender.display_name || id), hueOf: principal(event.sender), at: event.at,
        text: event.text, mine: principal(event.sender) === ctx.principal });
    }
    case "agent_reply":
      return message({ who: "opsloop", tag: `agent · ${event.agent}`, avatar: "◎", hueOf: "opsloop",
        at: event.at, text: event.text, mine: false, bot: true });
    case "tool_call":
      return line("tool", "⚙", el("code", { class: "tool-name", text: event.tool }), " ",
        el("span", { class: "muted", text: inline(event.arguments) }),
        event.approved_by ? el("span", { class: "ok", text: ` · approved by ${event.approved_by}` }) : null);
    case "tool_result": {
      const json = JSON.stringify(event.output);
      const short = json.length > 110 ? `${json.slice(0, 110)}…` : json;
      return line("result", "↳", el("details", {},
        el("summary", {}, el("code", { class: "tool-name", text: event.tool }), " returned ", el("span", { class: "muted", text: short })),
        el("pre", { text: JSON.stringify(event.output, null, 2) })));
    }
    case "error":
      return line("error", "⚠", `${event.source} error${event.tool ? ` in ${event.tool}` : ""}: `, el("span", { text: event.message }));
    case "model_call":
      return event.error ? line("error", "⚠", "model call failed: ", el("span", { text: event.error })) : null;
    case "human_request": {
      const card = new RequestCard(event, ctx.roles, ctx.onDecide);
      ctx.cards.set(card.id, card);
      return card.node;
    }
    case "human_response":
      ctx.cards.get(event.request_id)?.resolve(event);
      return null;
    case "decision_refused": {
      const card = ctx.cards.get(event.request_id);
      if (card) { card.refuse(event); return null; }
      return line("error", "✕", `${principal(event.actor)} was refused: `, el("span", { text: event.reason }));
    }
    case "status":
      if (event.status === "failed") return line("error", "✕", "The thread failed", event.reason ? `: ${event.reason}` : ".");
      if (event.status === "done") return line("system", "✓", "The thread is closed.");
      if (event.reason && /^(paused|resumed) by /.test(event.reason)) return line("system", "⏸", event.reason);
      return null;
    default:
      return null;
  }
}
