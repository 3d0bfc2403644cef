// citcon-sim dashboard: reads the /_sim/ JSON control surface and acts through it.
// Live via Server-Sent Events (/_sim/events); polls instead while the stream is down.
// Every piece of data reaches the page through textContent or an attribute, never HTML.
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);
  const view = {
    merchant: "", selected: null, search: "", rows: [], known: null, clock: null,
    clockAt: 0, total: 0, allTotal: 0, detail: null, expiryChecked: "",
  };

  // -- helpers ----------------------------------------------------------------------------

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function money(amount, currency) {
    if (amount === null || amount === undefined || !currency) return "";
    const exp = cfg.exponents[currency];
    const digits = exp === undefined ? 2 : exp;
    const major = amount / Math.pow(10, digits);
    try {
      return new Intl.NumberFormat("en-US", {
        style: "currency", currency: currency,
        minimumFractionDigits: digits, maximumFractionDigits: digits,
      }).format(major);
    } catch (e) {
      return major.toFixed(digits) + " " + currency;
    }
  }

  const STATUS_TEXT = {
    pending: "pending", authorized: "authorized", success: "success", fail: "fail",
    expired: "expired", cancelled: "cancelled",
  };

  function badge(status) {
    const b = el("span", "badge", STATUS_TEXT[status] || status);
    b.dataset.status = status;
    return b;
  }

  let toastTimer = 0;
  function toast(message, kind) {
    const t = $("toast");
    t.textContent = message;
    t.dataset.kind = kind || "info";
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, kind === "error" ? 6000 : 2800);
  }

  async function call(method, path, form) {
    const init = {method: method, cache: "no-store", headers: {Accept: "application/json"}};
    if (form) init.body = new URLSearchParams(form);
    const resp = await fetch(path, init);
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok && resp.status !== 202) {
      const msg = body && body.message ? body.message : "HTTP " + resp.status;
      const err = new Error(msg);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  // "2026-03-02 09:00:00" (already in the simulator's zone) plus seconds, same format.
  function addSeconds(text, seconds) {
    const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)$/.exec(text);
    if (!m) return text;
    const t = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) + seconds * 1000;
    return new Date(t).toISOString().slice(0, 19).replace("T", " ");
  }

  function shortTime(text) {
    // Today (on the virtual clock) shows the time only; other days show the date too.
    if (!text) return "";
    const today = view.clock ? view.clock.time.slice(0, 10) : "";
    return text.slice(0, 10) === today ? text.slice(11) : text.slice(5, 16);
  }

  // -- clock --------------------------------------------------------------------------------

  function currentClockText() {
    const c = view.clock;
    if (!c) return "";
    if (c.frozen) return c.time;
    return addSeconds(c.time, Math.floor((performance.now() - view.clockAt) / 1000));
  }

  function setClock(c) {
    const before = view.clock ? view.clock.time : null;
    view.clock = c;
    view.clockAt = performance.now();
    const time = $("clock-time");
    time.textContent = c.time;
    if (before && before !== c.time && c.frozen) {
      time.classList.add("moved");
      setTimeout(() => time.classList.remove("moved"), 700);
    }
    const mode = $("clock-mode");
    mode.textContent = c.frozen ? "frozen" : "running";
    mode.dataset.frozen = c.frozen ? "1" : "0";
    $("clock-tz").textContent = c.timezone;
    $("clock-jobs").textContent = String(c.pending_jobs);
  }

  setInterval(() => {
    if (!view.clock || view.clock.frozen) return;
    const now = currentClockText();
    $("clock-time").textContent = now;
    // Expiry is applied when a transaction is next read: read again once one is due.
    const due = view.rows.some((r) => r.status === "pending" && r.expiry_time <= now);
    if (due && view.expiryChecked !== now.slice(0, 16)) {
      view.expiryChecked = now.slice(0, 16);
      refresh();
    }
  }, 1000);

  // "90", "90s", "10m", "2h", "1d", "1h 30m" -> seconds (NaN if not understood).
  function parseDuration(text) {
    const s = text.trim().toLowerCase().replace(/\s+/g, "");
    if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
    if (!/^(\d+(\.\d+)?[a-z]+)+$/.test(s)) return NaN;
    const units = {s: 1, sec: 1, m: 60, min: 60, h: 3600, hr: 3600, d: 86400, day: 86400,
                   days: 86400, w: 604800};
    let total = 0;
    for (const m of s.matchAll(/(\d+(?:\.\d+)?)([a-z]+)/g)) {
      if (!Object.hasOwn(units, m[2])) return NaN;
      total += Number(m[1]) * units[m[2]];
    }
    return total;
  }

  async function advance(seconds, label) {
    const buttons = document.querySelectorAll("[data-advance], #advance-form button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const r = await call("POST", "/_sim/clock/advance", {seconds: String(seconds)});
      setClock(r);
      toast("Clock advanced " + label + (r.jobs_run ? " · " + r.jobs_run + " job(s) ran" : ""));
      refresh();
    } catch (e) {
      toast("Could not advance the clock: " + e.message, "error");
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  document.querySelectorAll("[data-advance]").forEach((b) => {
    b.addEventListener("click", () => advance(Number(b.dataset.advance), b.textContent.trim()));
  });
  $("advance-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("advance-custom");
    const seconds = parseDuration(input.value);
    if (!(seconds > 0)) {
      toast("Enter a duration like 90s, 10m, 2h or 3d", "error");
      return;
    }
    advance(seconds, "+" + input.value.trim());
    input.value = "";
  });

  // -- IPN stats ----------------------------------------------------------------------------

  function setStats(s) {
    document.querySelectorAll("[data-stat]").forEach((dd) => {
      const v = s[dd.dataset.stat];
      dd.textContent = v === undefined ? "–" : String(v);
    });
    const run = $("ipn-running");
    run.textContent = s.running ? "sending" : "stopped";
    run.dataset.running = s.running ? "1" : "0";
  }

  // -- transactions list ------------------------------------------------------------------

  let merchantsShown = "";
  function fillMerchants(list, selected) {
    const select = $("merchant");
    // Rebuilt only when it changed, so an open drop-down is not closed under the cursor.
    const signature = JSON.stringify([list, selected]);
    if (signature === merchantsShown) return;
    merchantsShown = signature;
    const opts = [el("option", null, "All merchants")];
    opts[0].value = "";
    list.forEach((m) => {
      const label = m.hint + (m.name ? " · " + m.name : "") + " (" + m.transactions + ")";
      const o = el("option", null, label);
      o.value = m.key;
      opts.push(o);
    });
    if (selected && !list.some((m) => m.key === selected)) {
      const o = el("option", null, "(merchant gone)");
      o.value = selected;
      opts.push(o);
    }
    select.replaceChildren(...opts);
    select.value = selected || "";
  }

  function ipnCell(row) {
    const span = el("span", "ipn-badge");
    if (!row.ipn) {
      span.dataset.state = "none";
      return span;  // nothing is due before the payment succeeds
    }
    span.dataset.state = row.ipn.state;
    const words = {not_sent: "no ipn_url", retrying: "retrying", delivered: "delivered",
                   failed: "failed", pending: "queued", suppressed: "suppressed"};
    let text = words[row.ipn.state] || row.ipn.state;
    if (row.ipn.attempts) text += " · " + row.ipn.attempts;
    span.textContent = text;
    span.title = row.ipn.attempts + " attempt(s)";
    return span;
  }

  function rowNode(row, fresh) {
    const tr = el("tr");
    tr.dataset.id = row.id;
    tr.tabIndex = 0;
    if (row.id === view.selected) tr.classList.add("selected");
    if (fresh) tr.classList.add("fresh");

    const created = el("td", "t-time");
    created.append(el("span", null, shortTime(row.created_time)), el("span", "t-id", row.id));
    created.title = row.created_time;

    const status = el("td");
    status.append(badge(row.status));

    const amount = el("td", "num");
    amount.append(el("span", "amount-main", money(row.amount, row.currency)));
    if (row.trans_currency !== row.currency || row.trans_amount !== row.amount) {
      amount.append(el("span", "amount-sub", money(row.trans_amount, row.trans_currency)));
    }
    if (row.refunded_amount) {
      amount.append(el("span", "amount-refund",
                       "−" + money(row.refunded_amount, row.currency) + " refunded"));
    }

    const vendor = el("td");
    const v = el("span", "vendor");
    const dot = el("span", "vendor-dot");
    dot.style.background = row.vendor_colour;  // from the simulator's own catalogue
    v.append(dot, el("span", null, row.vendor_name));
    // The API that created it: Online API, CHOP or UPI share the one ledger.
    if (row.face && row.face !== "online") v.append(el("span", "face", row.face.toUpperCase()));
    vendor.append(v);
    vendor.title = row.vendor + " · " + row.method + " · " + (row.face || "online") + " API";

    const ref = el("td", "ref");
    ref.append(el("span", "ref-text", row.reference));
    const who = el("span", "merchant");
    who.append(el("span", "merchant-hint", row.token_hint));
    if (row.merchant_name) who.append(el("span", "merchant-name", row.merchant_name));
    ref.append(who);
    const ipn = el("td");
    ipn.append(ipnCell(row));

    tr.append(created, status, amount, vendor, ref, ipn);
    return tr;
  }

  function renderRows() {
    const q = view.search.trim().toLowerCase();
    const rows = q ? view.rows.filter((r) =>
      r.id.toLowerCase().includes(q) || r.reference.toLowerCase().includes(q)) : view.rows;
    const known = view.known;
    const focusedId = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.id : null;
    $("rows").replaceChildren(...rows.map((r) => rowNode(r, known !== null && !known.has(r.id))));
    view.known = new Set(view.rows.map((r) => r.id));
    if (focusedId) {
      const again = $("rows").querySelector('tr[data-id="' + CSS.escape(focusedId) + '"]');
      if (again) again.focus();
    }
    const shown = view.rows.length < view.total
      ? view.rows.length + " of " + view.total : String(view.total);
    $("count").textContent = view.total ? "· " + shown : "";
    $("empty").hidden = view.allTotal !== 0;
    $("txns").hidden = rows.length === 0;
    const noMatch = $("no-match");
    noMatch.hidden = !(view.allTotal !== 0 && rows.length === 0);
    noMatch.textContent = q ? "Nothing matches “" + view.search.trim() + "”."
      : "No transactions for this merchant.";
  }

  function selectRow(id) {
    view.selected = id;
    history.replaceState(null, "", id ? "#txn=" + encodeURIComponent(id)
      : location.pathname + location.search);
    document.querySelectorAll("#rows tr").forEach((tr) => {
      tr.classList.toggle("selected", tr.dataset.id === id);
    });
    loadDetail();
  }

  // Picked by hand on a one-column layout: bring the detail (below the list) into view.
  function pick(id) {
    selectRow(id);
    if (window.matchMedia("(max-width: 1100px)").matches) {
      $("detail").scrollIntoView({behavior: "smooth", block: "start"});
    }
  }

  $("rows").addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr[data-id]");
    if (tr) pick(tr.dataset.id);
  });
  $("rows").addEventListener("keydown", (ev) => {
    const tr = ev.target.closest("tr[data-id]");
    if (!tr) return;
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      pick(tr.dataset.id);
    } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const next = ev.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
      if (next) next.focus();
    }
  });

  $("merchant").addEventListener("change", () => {
    view.merchant = $("merchant").value;
    view.known = null;
    refresh();
  });
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("token");
    const token = input.value.trim();
    input.value = "";  // the token is used once, to learn the merchant's key
    if (!token) { view.merchant = ""; refresh(); return; }
    loadState(token);
  });
  $("search").addEventListener("input", () => {
    view.search = $("search").value;
    renderRows();
  });
  $("copy-curl").addEventListener("click", async () => {
    const text = $("curl").textContent;
    try {
      await navigator.clipboard.writeText(text);
      toast("Copied");
    } catch (e) {
      const range = document.createRange();
      range.selectNodeContents($("curl"));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      toast("Selected: press Ctrl+C to copy");
    }
  });

  // -- state --------------------------------------------------------------------------------

  async function loadState(token) {
    const params = new URLSearchParams();
    if (token) params.set("token", token);
    else if (view.merchant) params.set("merchant", view.merchant);
    const s = await call("GET", "/_sim/dashboard/state?" + params.toString());
    if (token && s.merchant) {
      view.merchant = s.merchant;
      view.known = null;
    }
    const err = $("merchant-error");
    err.hidden = !s.merchant_error;
    err.textContent = s.merchant_error || "";
    view.rows = s.transactions;
    view.total = s.total;
    view.allTotal = s.all_total;
    setClock(s.clock);
    setStats(s.ipn);
    fillMerchants(s.merchants, token ? s.merchant : view.merchant);
    renderRows();
  }

  // Coalesce bursts of events into one fetch, and never run two fetches at once.
  let timer = 0, running = false, again = false;
  function refresh() {
    if (timer) return;
    timer = setTimeout(run, 60);
  }
  async function run() {
    timer = 0;
    if (running) { again = true; return; }
    running = true;
    try {
      await loadState();
      if (view.selected) await loadDetail();
    } catch (e) {
      setLive("offline");
    } finally {
      running = false;
      if (again) { again = false; refresh(); }
    }
  }

  // -- detail -------------------------------------------------------------------------------

  async function loadDetail() {
    const id = view.selected;
    if (!id) { showDetail(null); return; }
    try {
      const d = await call("GET", "/_sim/transactions/" + encodeURIComponent(id));
      if (view.selected === id) showDetail(d);
    } catch (e) {
      if (e.status === 404 && view.selected === id) {
        view.selected = null;
        history.replaceState(null, "", location.pathname + location.search);
        showDetail(null);
      }
    }
  }

  function text(id, value) {
    const node = $(id);
    const empty = value === null || value === undefined || value === "" || value === "null";
    node.textContent = empty ? "—" : String(value);
    node.classList.toggle("muted", empty);
  }

  function showDetail(d) {
    view.detail = d;
    $("detail-empty").hidden = !!d;
    $("detail-body").hidden = !d;
    if (!d) return;
    const status = $("d-status");
    status.textContent = STATUS_TEXT[d.internal_status] || d.internal_status;
    status.dataset.status = d.internal_status;
    const row = view.rows.find((r) => r.id === d.id);
    const dot = el("span", "vendor-dot");
    if (row) dot.style.background = row.vendor_colour;
    $("d-vendor").replaceChildren(dot, el("span", null, row ? row.vendor_name : d.vendor));
    $("d-amount").textContent = money(d.amount, d.currency);
    const other = d.trans_currency !== d.currency || d.trans_amount !== d.amount;
    $("d-other").textContent = other
      ? "Consumer pays " + money(d.trans_amount, d.trans_currency) : "";
    text("d-id", d.id);
    text("d-reference", d.reference);
    text("d-note", d.note);
    text("d-merchant", d.token_hint + (row && row.merchant_name ? " · " + row.merchant_name : ""));
    text("d-method", d.method + (d.auto_capture ? "" : " · delayed capture"));
    text("d-expiry", d.expiry_time);
    text("d-ipn-url", d.ipn_url);
    text("d-captured", d.captured_amount ? money(d.captured_amount, d.currency) : "");
    text("d-refunded", d.refunded_amount ? money(d.refunded_amount, d.currency) : "");

    const pending = d.internal_status === "pending";
    $("d-actions").hidden = !pending;
    $("act-pay").textContent = d.auto_capture ? "Pay" : "Authorise";
    const final = $("d-final");
    final.hidden = pending;
    final.textContent = d.internal_status === "authorized"
      ? "Authorised: the merchant captures (or cancels) it through the API."
      : "Final state: the consumer has nothing left to do.";
    $("d-wallet").href = "/u_landing?q=" + encodeURIComponent(d.id);
    $("d-json").href = "/_sim/transactions/" + encodeURIComponent(d.id);

    $("d-timeline").replaceChildren(...timeline(d).map(timelineNode));
    const notes = d.ipn || [];
    $("d-ipn-title").hidden = notes.length === 0;
    $("d-ipn").replaceChildren(...notes.map(notificationNode));
  }

  const EVENT_TITLES = {
    created: ["Created", "info"], success: ["Paid", "ok"], authorized: ["Authorised", "info"],
    fail: ["Payment failed", "bad"], expired: ["Expired", "warn"],
    cancelled: ["Cancelled", "warn"], refunded: ["Refunded", "warn"],
    captured: ["Captured", "ok"],
  };

  function timeline(d) {
    const items = [];
    d.timeline.forEach((t) => {
      const [title, kind] = EVENT_TITLES[t.event] || [t.event, "info"];
      const item = {time: t.time, title: title, kind: kind, lines: []};
      const detail = t.detail || {};
      if (t.event === "created") {
        item.lines.push(money(d.amount, d.currency) + " via " + d.vendor + " (" + d.method + ")");
      } else if (t.event === "success" && detail.captured !== undefined) {
        item.title = "Captured · paid";
        item.lines.push(money(detail.captured, d.currency));
      } else if (t.event === "fail" && detail.reason) {
        item.lines.push("Reason: " + detail.reason);
      } else if (t.event === "cancelled") {
        item.lines.push(detail.by === "consumer" ? "By the consumer" : "By the merchant");
      } else if (t.event === "refunded") {
        item.title = "Refunded " + money(detail.amount, d.currency);
        if (detail.refund_id) item.lines.push(detail.refund_id);
      } else if (t.event === "captured") {
        item.title = "Captured " + money(detail.amount, d.currency);
      }
      items.push(item);
    });
    // IPN attempts, oldest notification first (the API lists newest first).
    (d.ipn || []).slice().reverse().forEach((n) => {
      const label = n.event === "stale" ? "Stale IPN" : "IPN";
      if (n.state === "not_sent") {
        items.push({time: n.created_time, title: "No IPN sent", kind: "muted",
                    lines: ["The transaction has no ipn_url"]});
      } else if (n.state === "suppressed") {
        items.push({time: n.created_time, title: "IPN suppressed", kind: "warn",
                    lines: ["A scenario said never"]});
      }
      n.attempts.forEach((a) => {
        const item = {time: a.time, kind: a.ok ? "ok" : "bad", lines: [], ipn: true,
                      title: label + " attempt #" + a.number +
                        (a.trigger === "first" ? "" : " (" + a.trigger + ")")};
        if (a.status === null && a.error === null && a.sent) {
          item.kind = "info";
          item.lines.push("Sending…");
        } else {
          const parts = [];
          if (a.status !== null) parts.push("HTTP " + a.status);
          if (a.latency_ms !== null) parts.push(Math.round(a.latency_ms) + " ms");
          if (parts.length) item.lines.push(parts.join(" · "));
          if (a.error) item.error = a.error;
          if (a.body) item.body = "“" + a.body.slice(0, 120) + "”";
        }
        items.push(item);
      });
      if (n.next_attempt_time) {
        items.push({time: n.next_attempt_time, title: label + " retry scheduled",
                    kind: "future", lines: ["Retry " + (n.retries_used) + " of " + n.retries_max +
                    " · advance the clock to send it now"]});
      } else if (n.state === "failed") {
        items.push({time: n.attempts.length ? n.attempts[n.attempts.length - 1].time
                    : n.created_time, title: "IPN gave up", kind: "bad",
                    lines: ["After " + n.attempts.length + " attempt(s)"]});
      }
    });
    if (d.internal_status === "pending") {
      items.push({time: d.expiry_time, title: "Expires", kind: "future",
                  lines: ["Unless paid first"]});
    }
    // Stable sort: at the same second, ledger events stay ahead of the IPN they caused.
    return items.map((it, i) => [it, i]).sort((a, b) =>
      a[0].time < b[0].time ? -1 : a[0].time > b[0].time ? 1 : a[1] - b[1]).map((x) => x[0]);
  }

  function timelineNode(item) {
    const li = el("li", "tl " + item.kind);
    if (item.ipn) li.dataset.ipn = "1";
    const head = el("div", "tl-head");
    head.append(el("span", "tl-title", item.title), el("span", "tl-time", item.time));
    li.append(head);
    item.lines.forEach((line) => li.append(el("div", "tl-sub", line)));
    if (item.error) li.append(el("div", "tl-sub err", item.error));
    if (item.body) li.append(el("span", "tl-body", item.body));
    return li;
  }

  function notificationNode(n) {
    const li = el("li", "notif");
    const head = el("div");
    const state = el("span", "ipn-badge", n.state.replace("_", " "));
    state.dataset.state = n.state;
    head.append(state, el("span", "muted", " · " + n.attempts.length + " attempt(s)"));
    li.append(head);
    li.append(el("div", "mono", n.notify_id + (n.url ? " → " + n.url : "")));
    if (n.url) {
      const b = el("button", "btn redeliver", "Redeliver");
      b.type = "button";
      b.dataset.notify = n.notify_id;
      li.append(b);
    }
    return li;
  }

  $("d-ipn").addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-notify]");
    if (!b) return;
    b.disabled = true;
    try {
      await call("POST", "/_sim/ipn/" + encodeURIComponent(b.dataset.notify) +
                 "/redeliver?wait=no");
      toast("IPN queued for redelivery");
    } catch (e) {
      toast("Redeliver failed: " + e.message, "error");
    } finally {
      b.disabled = false;
      refresh();
    }
  });

  $("d-actions").addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b || !view.selected) return;
    const id = view.selected;
    const buttons = $("d-actions").querySelectorAll("button");
    buttons.forEach((x) => { x.disabled = true; });
    try {
      const r = await call("POST", "/_sim/transactions/" + encodeURIComponent(id) + "/" +
                           b.dataset.action);
      toast(id + " → " + r.internal_status);
    } catch (e) {
      toast(b.textContent + " refused: " + e.message, "error");
    } finally {
      buttons.forEach((x) => { x.disabled = false; });
      refresh();
    }
  });

  $("d-close").addEventListener("click", () => selectRow(null));

  // -- live updates -------------------------------------------------------------------------

  function setLive(state) {
    const live = $("live");
    live.dataset.state = state;
    live.textContent = {live: "live", polling: "polling", reconnecting: "reconnecting…",
                        offline: "offline", connecting: "connecting…"}[state] || state;
  }

  let pollTimer = 0;
  function startPolling() {
    if (!pollTimer) pollTimer = setInterval(refresh, 3000);
  }
  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = 0;
  }

  function parse(e) {
    try { return JSON.parse(e.data); } catch (err) { return null; }
  }

  // A pushed row replaces the one shown. A new transaction changes the counts, the
  // merchants and the order: that, and any change while a fetch is under way (its answer
  // could predate the change), fetches everything instead.
  function patchRow(row, kind) {
    if (!row || kind === "created" || timer || running) { refresh(); return; }
    const i = view.rows.findIndex((r) => r.id === row.id);
    if (i >= 0) {
      view.rows[i] = row;
      renderRows();
    }
    if (view.selected === row.id) loadDetail();
  }

  function connect() {
    if (!window.EventSource) { setLive("polling"); startPolling(); return; }
    const es = new EventSource("/_sim/events");
    es.onopen = () => { setLive("live"); stopPolling(); refresh(); };
    es.onerror = () => {
      // The browser reconnects by itself (retry: 2 s); poll meanwhile.
      setLive(es.readyState === EventSource.CLOSED ? "polling" : "reconnecting");
      startPolling();
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    };
    // txn and ipn carry the changed transaction's row: patched in place.
    es.addEventListener("txn", (e) => {
      const d = parse(e);
      if (d) patchRow(d.row, d.kind); else refresh();
    });
    es.addEventListener("ipn", (e) => {
      const d = parse(e);
      if (!d) { refresh(); return; }
      setStats(d);
      patchRow(d.row, "ipn");
    });
    ["reset", "resync"].forEach((name) => es.addEventListener(name, refresh));
    ["hello", "clock"].forEach((name) => es.addEventListener(name, (e) => {
      try { setClock(JSON.parse(e.data)); } catch (err) { /* keep the last clock */ }
      if (name === "clock") refresh();
    }));
  }

  // Opened as /_sim/?admin_token=… (a locked server): the cookie it set lets the page in
  // from now on, so the token leaves the address bar and the history.
  const query = new URLSearchParams(location.search);
  if (query.has("admin_token")) {
    query.delete("admin_token");
    const rest = query.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  const wanted = /^#txn=(.+)$/.exec(location.hash);
  if (wanted) view.selected = decodeURIComponent(wanted[1]);
  refresh();
  connect();
})();
