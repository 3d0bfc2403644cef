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

  // A paid payment refunded in full reads "refunded", in part "part refunded".
  function shownStatus(status, amount, refunded) {
    if (status !== "success" || !refunded) return [status, STATUS_TEXT[status] || status];
    return ["refunded", refunded >= amount ? "refunded" : "part refunded"];
  }

  function badge(status, amount, refunded) {
    const [key, words] = shownStatus(status, amount, refunded);
    const b = el("span", "badge", words);
    b.dataset.status = key;
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
    // The rest of the summary: who delivers, how wide, how patient (one line, wraps).
    const parts = [];
    if (s.listeners) {
      parts.push(s.listeners + (s.listeners === 1 ? " listener (citcon-sim listen) delivers"
        : " listeners (citcon-sim listen) deliver") + " instead of direct POSTs");
    }
    if (s.endpoints !== undefined) {
      parts.push(s.endpoints + (s.endpoints === 1 ? " endpoint" : " endpoints") + " busy");
    }
    if (s.workers !== undefined) {
      parts.push(s.workers + " workers, " + s.per_endpoint + " per endpoint");
    }
    if (s.queue_size !== undefined) parts.push("backlog limit " + s.queue_size);
    if (s.timeout !== undefined) parts.push("timeout " + duration(s.timeout));
    if (s.backoff && s.backoff.length) {
      parts.push("retries after " + s.backoff.map(duration).join(", "));
    }
    const setup = $("ipn-setup");
    setup.textContent = parts.join(" · ");
    setup.dataset.listeners = String(s.listeners || 0);
  }

  // Seconds as the shortest exact "90s", "5m", "1h", "2d" (or "1h 30m").
  function duration(seconds) {
    let left = Math.round(Number(seconds) || 0);
    if (left < 60) return left + "s";
    const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
    const out = [];
    units.forEach(([name, size]) => {
      if (left >= size) {
        out.push(Math.floor(left / size) + name);
        left %= size;
      }
    });
    return out.join(" ");
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
    // The request log's filter and the reset's scope list the same merchants.
    [["req-merchant", "All merchants", reqView.merchant],
     ["reset-scope", "every merchant", $("reset-scope").value]].forEach(([id, first, keep]) => {
      const other = [el("option", null, first)];
      other[0].value = "";
      list.forEach((m) => {
        const o = el("option", null, (id === "reset-scope" ? "merchant " : "") + m.hint +
                     (m.name ? " · " + m.name : "") + " (" + m.transactions + ")");
        o.value = m.key;
        other.push(o);
      });
      $(id).replaceChildren(...other);
      $(id).value = list.some((m) => m.key === keep) ? keep : "";
    });
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
    status.append(badge(row.status, row.amount, row.refunded_amount));

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

    // Labels for the phone layout, where each row is a card.
    [[created, "Created"], [status, "Status"], [amount, "Amount"], [vendor, "Vendor"],
     [ref, "Reference"], [ipn, "IPN"]].forEach(([td, label]) => { td.dataset.label = label; });
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

  let shownId = "";
  function showDetail(d) {
    view.detail = d;
    $("detail-empty").hidden = !!d;
    $("detail-body").hidden = !d;
    if (!d) return;
    const status = $("d-status");
    if (d.id !== shownId) {  // answers belong to the transaction they were about
      shownId = d.id;
      $("m-answer").hidden = true;
      $("ipn-answer").hidden = true;
    }
    const [key, words] = shownStatus(d.internal_status, d.amount, d.refunded_amount);
    status.textContent = words;
    status.dataset.status = key;
    fillMerchantActs(d);
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
    cancelled: ["Cancelled", "neutral"], refunded: ["Refunded", "refund"],
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
        // Made by a `citcon-sim listen` client: "listener <id> -> <url>".
        if (a.via) item.via = "via " + a.via.replace(" -> ", " → ");
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
    if (item.via) li.append(el("div", "tl-sub tl-via", item.via));
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
      // Waits (bounded) for the attempt, so the answer says what the receiver replied.
      const path = "/_sim/ipn/" + encodeURIComponent(b.dataset.notify) + "/redeliver";
      const r = await raw("POST", path);
      const attempt = r.body && r.body.attempt;
      showAnswer("ipn-answer", {status: r.status, ok: r.ok && !!attempt && attempt.ok,
                                body: r.body, title: "POST " + path});
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

  // -- answers: every action shows what the API said --------------------------------------

  // kind: "ok" or "bad"; body: parsed JSON or text. Shown as text, never as HTML.
  function showAnswer(id, what) {
    const box = $(id);
    const head = el("div", "answer-head");
    const pill = el("span", "pill-status", what.status ? "HTTP " + what.status : "no answer");
    pill.dataset.status = what.ok ? "success" : "fail";
    head.append(pill, el("span", "answer-what", what.title));
    const pre = el("pre", "answer-body");
    pre.textContent = typeof what.body === "string" ? what.body
      : JSON.stringify(what.body, null, 2);
    box.replaceChildren(head, pre);
    box.dataset.ok = what.ok ? "1" : "0";
    box.hidden = false;
  }

  // One HTTP call whose answer is shown as it came: {status, ok, body}.
  async function raw(method, path, opts) {
    const init = {method: method, cache: "no-store", headers: {Accept: "application/json"}};
    if (opts && opts.token) init.headers.Authorization = "Bearer " + opts.token;
    if (opts && opts.form) init.body = new URLSearchParams(opts.form);
    if (opts && opts.json) {
      init.body = JSON.stringify(opts.json);
      init.headers["Content-Type"] = "application/json";
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      return {status: 0, ok: false, body: "The simulator did not answer: " + e.message};
    }
    const textBody = await resp.text();
    let body = textBody;
    try { body = JSON.parse(textBody); } catch (e) { /* plain text, as pay answers */ }
    return {status: resp.status, ok: resp.ok, body: body};
  }

  // A failure the API answers with HTTP 200 (refund: refunded false; cancel: not cancelled).
  function refused(body) {
    if (!body || typeof body !== "object") return false;
    if (body.result === "fail" || body.status === "fail") return true;
    if (body.refunded === false || body.cancelled === false) return true;
    return false;
  }

  // -- the merchant APIs (the faces), called as a merchant backend would ------------------

  const upiTokens = new Map();  // private key -> access token (minted on first use)

  async function upiToken(key, fresh) {
    if (!fresh && upiTokens.has(key)) return {token: upiTokens.get(key)};
    const r = await raw("POST", "/v1/access-tokens", {token: key, json: {token_type: "server"}});
    if (!r.ok || !r.body || !r.body.data || !r.body.data.access_token) {
      return {error: r, title: "POST /v1/access-tokens"};
    }
    upiTokens.set(key, r.body.data.access_token);
    return {token: r.body.data.access_token};
  }

  // UPI call with the access-token step; a token that expired (virtual clock) is renewed.
  async function upiCall(key, path, json) {
    let t = await upiToken(key, false);
    if (t.error) return {r: t.error, title: t.title};
    let r = await raw("POST", path, {token: t.token, json: json});
    if (r.status === 401) {
      t = await upiToken(key, true);
      if (t.error) return {r: t.error, title: t.title};
      r = await raw("POST", path, {token: t.token, json: json});
    }
    return {r: r, title: "POST " + path};
  }

  const FACE_INFO = {};
  cfg.faces.forEach((f) => { FACE_INFO[f.name] = f; });
  const lastToken = () => sessionStorage.getItem("citcon-sim-token") || cfg.default_token;

  function created(face, body) {
    if (!body || typeof body !== "object") {
      // pay/pay_qr answer a URL whose first "=" precedes the id (the documented shape).
      return typeof body === "string" && body.includes("=")
        ? body.split("=")[1].split("&")[0] : null;
    }
    if (face === "upi") return body.data && body.data.id ? body.data.id : null;
    return body.transaction_id || null;
  }

  async function createPayment(f) {
    const vendor = (FACE_INFO[f.face].vendors.find((v) => v.code === f.vendor)) || {};
    const capture = vendor.delayed_capture ? (f.autoCapture ? "true" : "false") : null;
    if (f.face === "upi") {
      const txn = {reference: f.reference, amount: Number(f.amount), currency: f.currency};
      if (capture !== null) txn.auto_capture = capture === "true";
      const body = {transaction: txn, payment: {method: f.vendor}};
      if (f.ipn) body.urls = {ipn: f.ipn};
      // A non-numeric amount goes as typed, so the API (not the page) says what is wrong.
      if (!/^\d+$/.test(f.amount)) txn.amount = f.amount;
      return upiCall(f.token, "/v1/charges", body);
    }
    const form = {amount: f.amount, currency: f.currency, reference: f.reference};
    if (f.ipn) form.ipn_url = f.ipn;
    if (capture !== null) form.auto_capture = capture;
    let path;
    if (f.face === "chop") {
      path = "/chop/chop";
      form.payment_method = f.vendor;
    } else {
      path = "/payment/" + f.endpoint;
      form.vendor = f.vendor;
      form.response_format = "json";
    }
    return {r: await raw("POST", path, {token: f.token, form: form}), title: "POST " + path};
  }

  async function merchantAct(action, d, token, amount, reason) {
    if (d.face === "upi") {
      const body = {id: d.id};
      if (action === "refund") {
        body.reference = "refund-" + Date.now().toString(36);
        body.amount = /^\d+$/.test(amount) ? Number(amount) : amount;
        body.currency = d.currency;
        if (reason) body.note = reason;
      } else if (action === "capture" && amount) {
        body.amount = /^\d+$/.test(amount) ? Number(amount) : amount;
      }
      return upiCall(token, "/v1/" + action + "s", body);
    }
    const prefix = d.face === "chop" ? "/chop/" : "/payment/";
    const form = {transaction_id: d.id};
    if (action === "refund") {
      form.amount = amount;
      form.currency = d.currency;
      if (reason) form.reason = reason;
    } else if (action === "capture") {
      form.amount = amount;
    }
    const path = prefix + action;
    return {r: await raw("POST", path, {token: token, form: form}), title: "POST " + path};
  }

  // -- new payment -----------------------------------------------------------------------

  // What the consumer does on the hosted page (GET /_sim/vendors: journey).
  const JOURNEYS = {qr_app: "QR / wallet app", login: "wallet sign-in", card: "card page",
                    bank: "bank choice", redirect: "redirect"};

  function fillVendors() {
    const face = FACE_INFO[$("c-face").value];
    const before = $("c-vendor").value;
    $("c-vendor").replaceChildren(...face.vendors.map((v) => {
      const o = el("option", null, v.name + " (" + v.code + ")");
      o.value = v.code;
      o.dataset.journey = v.journey || "";
      return o;
    }));
    if (face.vendors.some((v) => v.code === before)) $("c-vendor").value = before;
    $("c-endpoint-label").hidden = face.name !== "online";
    syncCapture();
  }

  function syncCapture() {
    const face = FACE_INFO[$("c-face").value];
    const v = face.vendors.find((x) => x.code === $("c-vendor").value);
    $("c-journey").textContent = v && JOURNEYS[v.journey]
      ? "Consumer's journey: " + JOURNEYS[v.journey] : "";
    $("c-capture-label").hidden = !(v && v.delayed_capture);
  }

  function amountHint(inputId, hintId, currency) {
    const value = $(inputId).value.trim();
    $(hintId).textContent = /^\d+$/.test(value) && currency
      ? "= " + money(Number(value), currency) : "";
  }

  function newReference() {
    return "order-" + Date.now().toString(36);
  }

  cfg.faces.forEach((f) => {
    const o = el("option", null, f.label);
    o.value = f.name;
    $("c-face").append(o);
  });
  $("c-face").addEventListener("change", fillVendors);
  $("c-vendor").addEventListener("change", syncCapture);
  ["c-amount", "c-currency"].forEach((id) => $(id).addEventListener("input", () =>
    amountHint("c-amount", "c-amount-shown", $("c-currency").value.trim().toUpperCase())));
  fillVendors();

  function openPanel(id, open) {
    $(id).hidden = !open;
    const button = id === "create" ? $("open-create") : $("open-reset");
    button.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      const first = $(id).querySelector("input, select");
      if (first) first.focus({preventScroll: true});
      $(id).scrollIntoView({block: "nearest"});
    }
  }

  $("open-create").addEventListener("click", () => {
    const open = $("create").hidden;
    if (open) {
      if (!$("c-token").value) $("c-token").value = lastToken();
      if (!$("c-reference").value) $("c-reference").value = newReference();
      amountHint("c-amount", "c-amount-shown", $("c-currency").value.trim().toUpperCase());
    }
    openPanel("create", open);
  });
  $("open-reset").addEventListener("click", () => openPanel("reset-panel", $("reset-panel").hidden));
  document.querySelectorAll("[data-close]").forEach((b) => {
    b.addEventListener("click", () => openPanel(b.dataset.close, false));
  });

  $("create-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = {
      face: $("c-face").value, endpoint: $("c-endpoint").value,
      token: $("c-token").value.trim(), vendor: $("c-vendor").value,
      amount: $("c-amount").value.trim(), currency: $("c-currency").value.trim().toUpperCase(),
      reference: $("c-reference").value.trim(), ipn: $("c-ipn").value.trim(),
      autoCapture: $("c-auto-capture").checked,
    };
    $("c-submit").disabled = true;
    try {
      const {r, title} = await createPayment(f);
      const id = r.ok ? created(f.face, r.body) : null;
      showAnswer("c-answer", {status: r.status, ok: r.ok && !!id, body: r.body, title: title});
      if (id) {
        sessionStorage.setItem("citcon-sim-token", f.token);
        $("c-reference").value = newReference();  // the next one is a new order
        toast("Created " + id);
        showTab("transactions");
        selectRow(id);
        refresh();
      }
    } finally {
      $("c-submit").disabled = false;
    }
  });

  // -- merchant actions on the selected transaction ---------------------------------------

  let actsFor = "";
  function fillMerchantActs(d) {
    const face = FACE_INFO[d.face] || {label: d.face};
    $("d-face-label").textContent = face.label;
    const refundable = d.internal_status === "success" && d.refunded_amount < d.amount;
    const authorised = d.internal_status === "authorized";
    const cancellable = ["pending", "authorized", "success"].includes(d.internal_status);
    const canCapture = authorised && d.face !== "chop";
    $("m-refund").hidden = !refundable;
    $("m-capture").hidden = !canCapture;
    $("m-cancel").hidden = !cancellable;
    $("d-merchant-acts").hidden = !(refundable || authorised || cancellable);
    $("m-note").textContent = authorised && d.face === "chop"
      ? "CHOP has no capture call: capture it through the Online API, or cancel it." : "";
    // A new transaction (or a new state) proposes the amount left to refund or capture.
    const key = d.id + "|" + d.internal_status + "|" + d.refunded_amount + "|" + d.captured_amount;
    if (key !== actsFor) {
      actsFor = key;
      const left = authorised ? d.amount - (d.captured_amount || 0)
        : d.amount - (d.refunded_amount || 0);
      $("m-amount").value = left > 0 ? String(left) : "";
      if (!$("m-token").value) $("m-token").value = lastToken();
      amountHint("m-amount", "m-amount-shown", d.currency);
    }
  }

  $("m-amount").addEventListener("input", () => {
    if (view.detail) amountHint("m-amount", "m-amount-shown", view.detail.currency);
  });

  $("d-merchant-acts").addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-merchant]");
    const d = view.detail;
    if (!b || !d) return;
    const buttons = $("d-merchant-acts").querySelectorAll("button");
    buttons.forEach((x) => { x.disabled = true; });
    try {
      const token = $("m-token").value.trim();
      const {r, title} = await merchantAct(b.dataset.merchant, d, token,
                                           $("m-amount").value.trim(), $("m-reason").value.trim());
      const ok = r.ok && !refused(r.body);
      showAnswer("m-answer", {status: r.status, ok: ok, body: r.body, title: title});
      if (ok) sessionStorage.setItem("citcon-sim-token", token);
    } finally {
      buttons.forEach((x) => { x.disabled = false; });
      refresh();
    }
  });

  // -- reset -----------------------------------------------------------------------------

  $("reset-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    $("reset-confirm").hidden = false;
    $("reset-go").hidden = true;
    $("reset-yes").focus();
  });
  function endConfirm() {
    $("reset-confirm").hidden = true;
    $("reset-go").hidden = false;
  }
  $("reset-no").addEventListener("click", endConfirm);

  // Forgotten by a reset (all, or {merchant: key}): the selection goes, unasked.
  function dropForgotten(scope) {
    if (!view.selected) return;
    const row = view.rows.find((r) => r.id === view.selected);
    if (!scope || !scope.merchant || (row && row.merchant === scope.merchant)) selectRow(null);
  }
  $("reset-yes").addEventListener("click", async () => {
    const key = $("reset-scope").value;
    const r = key ? await raw("POST", "/_sim/dashboard/reset", {form: {merchant: key}})
      : await raw("POST", "/_sim/reset");
    showAnswer("reset-answer", {status: r.status, ok: r.ok, body: r.body,
                                title: key ? "POST /_sim/dashboard/reset" : "POST /_sim/reset"});
    endConfirm();
    if (r.ok) dropForgotten(key ? {merchant: key} : {});
    if (r.ok && key && view.merchant === key) view.merchant = "";
    if (r.ok && key && reqView.merchant === key) { reqView.merchant = ""; }
    refresh();
    loadRequests();
  });

  // -- tabs ------------------------------------------------------------------------------

  let tabShown = "transactions";
  function showTab(name) {
    tabShown = name;
    document.querySelectorAll("[role=tab]").forEach((t) => {
      const on = t.dataset.tab === name;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      $("tab-" + t.dataset.tab).hidden = !on;
    });
    if (name === "requests") loadRequests();
    if (name === "scenarios") loadScenarios();
  }
  document.querySelectorAll("[role=tab]").forEach((t) => {
    t.addEventListener("click", () => showTab(t.dataset.tab));
    t.addEventListener("keydown", (ev) => {
      if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
      const tabs = [...document.querySelectorAll("[role=tab]")];
      const i = tabs.indexOf(t) + (ev.key === "ArrowRight" ? 1 : -1);
      const next = tabs[(i + tabs.length) % tabs.length];
      next.focus();
      showTab(next.dataset.tab);
    });
  });

  // -- request log ---------------------------------------------------------------------------

  const reqView = {merchant: "", txn: "", surprises: false};
  let reqTimer = 0, reqRunning = false, reqAgain = false;

  function loadRequests() {
    if (tabShown !== "requests" || reqTimer) return;
    reqTimer = setTimeout(runRequests, 60);
  }
  async function runRequests() {
    reqTimer = 0;
    if (reqRunning) { reqAgain = true; return; }
    reqRunning = true;
    try {
      const params = new URLSearchParams({limit: "200"});
      if (reqView.merchant) params.set("merchant", reqView.merchant);
      if (reqView.txn) params.set("transaction_id", reqView.txn);
      const r = await raw("GET", "/_sim/dashboard/requests?" + params.toString());
      if (r.ok) renderRequests(r.body);
      else if (r.status === 404) { reqView.merchant = ""; $("req-merchant").value = ""; reqAgain = true; }
    } finally {
      reqRunning = false;
      if (reqAgain) { reqAgain = false; loadRequests(); }
    }
  }

  function pretty(value) {
    if (value === null || value === undefined) return "(no body)";
    if (typeof value !== "string") return JSON.stringify(value, null, 2);
    try { return JSON.stringify(JSON.parse(value), null, 2); } catch (e) { return value; }
  }

  const opened = new Set();  // entries whose bodies are shown stay open across refreshes
  function requestNode(e) {
    const li = el("li", "req");
    li.dataset.seq = String(e.seq);
    const details = el("details");
    details.open = opened.has(e.seq);
    details.addEventListener("toggle", () => {
      if (details.open) opened.add(e.seq); else opened.delete(e.seq);
    });
    const summary = el("summary");
    const code = el("span", "pill-status", String(e.status));
    code.dataset.status = e.status < 400 ? "success" : "fail";
    const line = el("span", "req-line");
    line.append(el("strong", null, e.method + " "), el("span", "mono", e.path));
    const tags = el("span", "req-tags");
    surprises(e).forEach((tag) => {
      const b = el("span", "surprise", tag);
      b.title = "Scenario surprise: " + tag;
      tags.append(b);
    });
    if (e.scenario_rule) {
      const r = el("span", "rule", e.scenario_rule);
      r.title = "Scenario rule: " + e.scenario_rule;
      tags.append(r);
    }
    const meta = el("span", "req-meta muted");
    meta.append(el("span", null, e.time), el("span", "face", e.face),
                el("span", "merchant-hint", e.token || "no token"));
    summary.append(code, line);
    if (tags.childNodes.length) summary.append(tags);
    summary.append(meta);
    if (e.surprise) li.dataset.surprise = e.surprise;
    details.append(summary);
    const bodies = el("div", "req-bodies");
    if (e.transaction_id) {
      const link = el("button", "btn linkish req-txn", e.transaction_id);
      link.type = "button";
      link.dataset.txn = e.transaction_id;
      link.title = "Only this transaction's requests";
      bodies.append(el("span", "muted small", "Transaction "), link);
    }
    if (e.scenario_rule) bodies.append(el("div", "small", "Scenario rule: " + e.scenario_rule));
    bodies.append(el("h4", null, "Request"), el("pre", "req-request", pretty(e.params)),
                  el("h4", null, "Response · " + e.duration_ms + " ms"),
                  el("pre", "req-response", pretty(e.response)));
    details.append(bodies);
    li.append(details);
    return li;
  }

  // The journal's tag: the scenario's surprises on this call, comma-separated.
  function surprises(e) {
    return (e.surprise || "").split(",").map((t) => t.trim()).filter((t) => t);
  }

  let reqShown = null;
  function renderRequests(body) {
    reqShown = body;
    const list = reqView.surprises ? body.requests.filter((e) => surprises(e).length)
      : body.requests;
    $("req-list").replaceChildren(...list.map(requestNode));
    $("req-count").textContent = list.length ? "· " + list.length : "";
    const empty = $("req-empty");
    empty.hidden = list.length > 0;
    empty.textContent = !body.enabled ? "The journal is off (--journal-size 0)."
      : reqView.merchant || reqView.txn || reqView.surprises
        ? "No requests match these filters."
        : "No merchant API calls yet.";
  }

  $("req-merchant").addEventListener("change", () => {
    reqView.merchant = $("req-merchant").value;
    loadRequests();
  });
  $("req-txn").addEventListener("input", () => {
    reqView.txn = $("req-txn").value.trim();
    loadRequests();
  });
  $("req-surprises").addEventListener("change", () => {
    reqView.surprises = $("req-surprises").checked;
    if (reqShown) renderRequests(reqShown);  // filtered here: no new fetch
  });
  $("req-clear").addEventListener("click", () => {
    reqView.merchant = reqView.txn = "";
    reqView.surprises = false;
    $("req-merchant").value = "";
    $("req-txn").value = "";
    $("req-surprises").checked = false;
    loadRequests();
  });
  $("req-list").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-txn]");
    if (!b) return;
    reqView.txn = b.dataset.txn;
    $("req-txn").value = reqView.txn;
    loadRequests();
  });
  $("d-requests").addEventListener("click", (ev) => {
    ev.preventDefault();
    if (!view.detail) return;
    reqView.txn = view.detail.id;
    $("req-txn").value = reqView.txn;
    showTab("requests");
  });

  // -- scenarios -----------------------------------------------------------------------------

  (cfg.scenarios || []).forEach((name) => {
    const o = el("option", null, name);
    o.value = name;
    $("scn-name").append(o);
  });

  async function loadScenarios() {
    if (tabShown !== "scenarios") return;
    const r = await raw("GET", "/_sim/scenarios");
    if (r.ok) renderScenarios(r.body);
  }

  function scenarioNode(s, scope) {
    const box = el("div", "scn-item");
    box.dataset.name = s.name;
    const head = el("div", "scn-head");
    head.append(el("strong", null, s.name), el("span", "muted small", " · " + scope));
    box.append(head);
    if (s.description) box.append(el("p", "muted small", s.description));
    const rules = el("ul", "scn-rules");
    s.rules.forEach((rule) => {
      const li = el("li");
      li.append(el("span", null, rule.name),
                el("span", "muted small", " · matched " + rule.seen + ", applied " +
                   rule.applied + (rule.times ? " of " + rule.times : "")));
      rules.append(li);
    });
    box.append(rules);
    return box;
  }

  function renderScenarios(book) {
    const nodes = book.global.map((s) => scenarioNode(s, "every merchant"));
    Object.keys(book.by_token).forEach((hint) => {
      book.by_token[hint].forEach((s) => nodes.push(scenarioNode(s, "merchant " + hint)));
    });
    if (!nodes.length) nodes.push(el("p", "muted", "No scenario loaded."));
    $("scn-list").replaceChildren(...nodes);
    $("scn-magic").textContent = book.magic_amounts
      ? "Magic amounts are on (amounts ending 9901 decline, 9902 expire…)."
      : "Magic amounts are off (citcon-sim serve --magic-amounts turns them on).";
  }

  $("scn-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = {};
    const textValue = $("scn-text").value;
    if (textValue.trim()) form.scenario = textValue;
    else if ($("scn-name").value) form.name = $("scn-name").value;
    const token = $("scn-token").value.trim();
    if (token) form.token = token;
    const r = await raw("POST", "/_sim/scenarios", {form: form});
    showAnswer("scn-answer", {status: r.status, ok: r.ok, body: r.body,
                              title: "POST /_sim/scenarios"});
    loadScenarios();
  });
  $("scn-clear").addEventListener("click", async () => {
    const token = $("scn-token").value.trim();
    const path = "/_sim/scenarios" + (token ? "?" + new URLSearchParams({token: token}) : "");
    const r = await raw("DELETE", path);
    showAnswer("scn-answer", {status: r.status, ok: r.ok, body: r.body,
                              title: "DELETE /_sim/scenarios" + (token ? "?token=…" : "")});
    loadScenarios();
  });

  // -- live updates -------------------------------------------------------------------------

  function setLive(state) {
    const live = $("live");
    live.dataset.state = state;
    live.textContent = {live: "live", polling: "polling", reconnecting: "reconnecting…",
                        offline: "offline", connecting: "connecting…"}[state] || state;
  }

  let pollTimer = 0;
  function startPolling() {
    // Without the stream, the open tab keeps itself current (each load is a no-op when
    // its tab is hidden).
    if (!pollTimer) {
      pollTimer = setInterval(() => { refresh(); loadRequests(); loadScenarios(); }, 3000);
    }
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

  // The server ended this page's stream for a newer page (--max-event-streams): say so,
  // poll, and let the browser come back only after the long retry the server set.
  let stream = null, dropped = false;
  function showDropped(d) {
    dropped = true;
    const why = d && d.reason ? d.reason
      : "the simulator closed this page's live stream for a newer one";
    // The server's reason already says it polls: add how often.
    $("stream-notice-text").textContent = "Live updates stopped: " + why +
      " (every 3 seconds, so changes show up a little later).";
    $("stream-notice").hidden = false;
    $("live").title = "Polling: " + why;
    setLive("polling");
    startPolling();
  }
  function hideDropped() {
    dropped = false;
    $("stream-notice").hidden = true;
    $("live").title = "Updates as they happen";
  }
  $("stream-reconnect").addEventListener("click", () => {
    if (stream) stream.close();
    hideDropped();
    setLive("connecting");
    connect();
  });

  function connect() {
    if (!window.EventSource) { setLive("polling"); startPolling(); return; }
    const es = stream = new EventSource("/_sim/events");
    es.onopen = () => { hideDropped(); setLive("live"); stopPolling(); refresh(); };
    es.addEventListener("dropped", (e) => showDropped(parse(e)));
    es.onerror = () => {
      if (es !== stream) return;  // one replaced by "Go live again"
      // The browser reconnects by itself (retry: 2 s; long after "dropped"); poll meanwhile.
      setLive(dropped || es.readyState === EventSource.CLOSED ? "polling" : "reconnecting");
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
    // A reset that took the selected transaction away: let it go before refetching.
    es.addEventListener("reset", (e) => dropForgotten(parse(e)));
    ["reset", "resync"].forEach((name) => es.addEventListener(name, () => {
      refresh();
      loadRequests();
      loadScenarios();
    }));
    // A merchant API call was journalled: the request log fetches what its filters show.
    es.addEventListener("request", (e) => {
      const d = parse(e);
      if (d && reqView.merchant && d.merchant !== reqView.merchant) return;
      if (d && reqView.txn && d.transaction_id !== reqView.txn) return;
      loadRequests();
    });
    es.addEventListener("scenarios", () => loadScenarios());
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
