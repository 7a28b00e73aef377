// icthp gallery: pick images and a prompt, send them to this server's API,
// show the answer as cards best first. Everything the server says is put in
// the page as text (textContent, dataset), never as HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const data = document.body.dataset;
  const cfg = {
    maxImages: parseInt(data.maxImages, 10) || 64,
    maxBodyBytes: Number(data.maxBodyBytes) || 0,
    maxPromptBytes: parseInt(data.maxPromptBytes, 10) || 0,
    auth: data.auth === 'true',
  };
  const TOKEN_KEY = 'icthp.token';
  // Display names of the scores we know; any other score the server sends
  // is shown under its own name.
  const LABELS = {
    ict_hp: 'ICT-HP', ict: 'ICT', hp: 'HP', hp_logit: 'HP logit', imagereward: 'ImageReward',
  };
  const label = (name) => LABELS[name] || name;

  const state = {
    files: [], // {id, file, url}, in request order
    models: [], // names from /v1/models
    xhr: null, // the request in flight
    result: null, // {entries, names, files}
    nextId: 1,
    token: '', // used only when session storage is off
  };

  // ---- token (kept in this tab's session storage only) ----

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return state.token || ''; }
  }
  function setToken(t) {
    state.token = t;
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage off: state.token is used */ }
  }

  function askToken(message) {
    const dlg = $('token-dialog');
    $('token-message').textContent = message || '';
    $('token-input').value = '';
    if (!dlg.open) dlg.showModal();
    $('token-input').focus();
  }

  function onTokenClose() {
    const dlg = $('token-dialog');
    const t = $('token-input').value.trim();
    if (dlg.returnValue === 'ok' && t) {
      setToken(t);
      loadModels();
    } else if (!getToken()) {
      setModelsStatus('The API needs a token: choose “API token…”.', true);
    }
  }

  // ---- HTTP ----

  // request sends one API call with the token; XMLHttpRequest rather than
  // fetch because it reports upload progress.
  function request(method, url, body, onUpload) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      try {
        const token = getToken();
        if (token) xhr.setRequestHeader('Authorization', 'Bearer ' + token);
      } catch (e) {
        reject(new Error('the token holds characters an HTTP header cannot carry'));
        return;
      }
      xhr.setRequestHeader('Accept', 'application/json');
      if (onUpload) xhr.upload.addEventListener('progress', onUpload);
      const t0 = performance.now();
      xhr.addEventListener('load', () => {
        let json = null;
        try { json = JSON.parse(xhr.responseText); } catch (_) { /* not JSON: reported below */ }
        resolve({
          status: xhr.status, json, ms: performance.now() - t0,
          requestId: xhr.getResponseHeader('X-Request-Id') || '',
          retryAfter: parseInt(xhr.getResponseHeader('Retry-After'), 10) || 0,
        });
      });
      xhr.addEventListener('error', () => reject(new Error('the server could not be reached')));
      xhr.addEventListener('abort', () => reject(new Error('cancelled')));
      if (onUpload) state.xhr = xhr;
      xhr.send(body);
    });
  }

  function errorText(r) {
    const e = r.json && r.json.error;
    if (e && e.message) return e.message + ' (' + r.status + ' ' + e.code + ')';
    return 'HTTP ' + r.status;
  }

  // ---- models ----

  function setModelsStatus(text, bad) {
    const p = $('models-status');
    p.textContent = text;
    p.classList.toggle('error', !!bad);
  }

  async function loadModels() {
    if (cfg.auth && !getToken()) {
      setModelsStatus('The API needs a token.', true);
      askToken();
      return;
    }
    setModelsStatus('Loading the models…');
    let r;
    try {
      r = await request('GET', '/v1/models');
    } catch (e) {
      setModelsStatus('Cannot list the models: ' + e.message + '; retrying…', true);
      setTimeout(loadModels, 3000);
      return;
    }
    if (r.status === 401 || r.status === 403) {
      setToken('');
      setModelsStatus('The API needs a valid token.', true);
      askToken(r.status === 403 ? 'That token was not accepted.' : 'This server needs a token.');
      return;
    }
    if (r.status === 503 || r.status === 429) {
      setModelsStatus('The server is not ready (' + errorText(r) + '); retrying…', true);
      setTimeout(loadModels, 1000 * (r.retryAfter || 1));
      return;
    }
    if (r.status !== 200 || !r.json || !Array.isArray(r.json.models)) {
      setModelsStatus('Cannot list the models: ' + errorText(r), true);
      return;
    }
    renderModels(r.json.models);
  }

  function renderModels(models) {
    state.models = models.map((m) => String(m.name));
    const fs = $('models');
    fs.querySelectorAll('label, p').forEach((n) => n.remove());
    for (const m of models) {
      const lab = document.createElement('label');
      lab.className = 'model';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.name = 'model';
      box.value = String(m.name);
      box.checked = true;
      const name = document.createElement('span');
      name.textContent = label(String(m.name));
      const info = document.createElement('span');
      info.className = 'muted';
      info.textContent = [m.version, m.precision, m.device].filter(Boolean).join(' · ');
      lab.append(box, name, info);
      fs.append(lab);
    }
    const names = state.models.map(label).join(', ');
    setModelsStatus(models.length ? 'Models: ' + names : 'No model is loaded.', !models.length);
    $('token-button').hidden = !cfg.auth;
  }

  function selectedModels() {
    return Array.from(document.querySelectorAll('#models input[name=model]:checked')).map((b) => b.value);
  }

  // ---- choosing images ----

  function addFiles(list) {
    const arr = Array.from(list || []);
    if (!arr.length) return;
    const room = Math.max(0, cfg.maxImages - state.files.length);
    const taken = arr.slice(0, room);
    for (const f of taken) {
      state.files.push({ id: state.nextId++, file: f, url: URL.createObjectURL(f) });
    }
    const left = arr.length - taken.length;
    setFileNote(left > 0
      ? 'The server takes at most ' + cfg.maxImages + ' images per request: ' + left + ' left out.' : '');
    renderThumbs();
  }

  function setFileNote(text) {
    $('file-note').textContent = text;
  }

  function removeFile(id) {
    const i = state.files.findIndex((f) => f.id === id);
    if (i < 0) return;
    const [gone] = state.files.splice(i, 1);
    release([gone.url]);
    setFileNote('');
    renderThumbs();
  }

  // release revokes the object URLs no longer shown anywhere.
  function release(urls) {
    const live = new Set(state.files.map((f) => f.url));
    if (state.result) state.result.files.forEach((f) => live.add(f.url));
    for (const u of urls) if (!live.has(u)) URL.revokeObjectURL(u);
  }

  // thumbImage shows a picked file; one the browser cannot decode becomes a
  // "no preview" box (the server still says what it makes of the file).
  function thumbImage(url, alt) {
    const img = document.createElement('img');
    img.alt = alt;
    img.decoding = 'async';
    img.addEventListener('error', () => {
      const box = document.createElement('span');
      box.className = 'noimg';
      box.textContent = 'no preview';
      img.replaceWith(box);
    });
    img.src = url;
    return img;
  }

  function renderThumbs() {
    const ul = $('thumbs');
    ul.replaceChildren();
    for (const f of state.files) {
      const li = document.createElement('li');
      li.className = 'thumb';
      const name = document.createElement('span');
      name.className = 'thumb-name';
      name.textContent = f.file.name;
      name.title = f.file.name;
      const rm = document.createElement('button');
      rm.type = 'button';
      rm.className = 'remove';
      rm.textContent = '×';
      rm.setAttribute('aria-label', 'Remove ' + f.file.name);
      rm.addEventListener('click', () => removeFile(f.id));
      li.append(thumbImage(f.url, ''), name, rm);
      ul.append(li);
    }
    const n = state.files.length;
    $('limit').textContent = n
      ? '(' + n + ' of at most ' + cfg.maxImages + ')' : '(up to ' + cfg.maxImages + ' images)';
    $('clear').disabled = n === 0;
  }

  function setupDrop() {
    const zone = $('drop');
    const input = $('files');
    input.addEventListener('change', () => {
      addFiles(input.files);
      input.value = '';
    });
    // A file dropped beside the zone must not make the browser navigate away.
    window.addEventListener('dragover', (e) => e.preventDefault());
    window.addEventListener('drop', (e) => {
      e.preventDefault();
      if (!zone.contains(e.target)) addFiles(e.dataTransfer && e.dataTransfer.files);
    });
    zone.addEventListener('dragenter', (e) => { e.preventDefault(); zone.classList.add('over'); });
    zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
    zone.addEventListener('dragleave', (e) => {
      if (!zone.contains(e.relatedTarget)) zone.classList.remove('over');
    });
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      zone.classList.remove('over');
      addFiles(e.dataTransfer && e.dataTransfer.files);
    });
  }

  // ---- ranking ----

  function setStatus(text, bad) {
    const p = $('status');
    p.textContent = text;
    p.classList.toggle('error', !!bad);
  }

  function utf8Length(s) {
    return new TextEncoder().encode(s).length;
  }

  // checkInput returns what is wrong with the form, or ''.
  function checkInput(prompt, files, models) {
    if (!files.length) return 'Add at least one image first.';
    if (state.models.length && !models.length) return 'Choose at least one model.';
    if (models.includes('ict') && !prompt.trim()) return 'ICT scores images against a prompt: write one (or untick ICT).';
    if (cfg.maxPromptBytes && utf8Length(prompt) > cfg.maxPromptBytes) {
      return 'The prompt is longer than the server takes (' + cfg.maxPromptBytes + ' bytes).';
    }
    const bytes = files.reduce((n, f) => n + f.file.size, 0);
    if (cfg.maxBodyBytes && bytes > cfg.maxBodyBytes) {
      return 'These images hold ' + mib(bytes) + ', more than the server takes in one request (' + mib(cfg.maxBodyBytes) + ').';
    }
    return '';
  }

  function mib(n) {
    return (n / 1048576).toFixed(1) + ' MiB';
  }

  async function rank(ev) {
    ev.preventDefault();
    if (state.xhr) return;
    const prompt = $('prompt').value;
    const files = state.files.slice();
    const models = selectedModels();
    const bad = checkInput(prompt, files, models);
    if (bad) {
      setStatus(bad, true);
      return;
    }
    // Every loaded model: /v1/rank, the server's ICT-HP order. A narrower
    // choice: /v1/score with "models", and ICT-HP worked out here.
    const everything = models.length === state.models.length;
    const fd = new FormData();
    if (prompt.trim() || everything) fd.append('prompt', prompt);
    if (!everything) fd.append('models', models.join(','));
    for (const f of files) fd.append('images', f.file, f.file.name);
    const url = everything ? '/v1/rank' : '/v1/score';
    setStatus('');
    progressStart(files.length);
    let r;
    try {
      r = await request('POST', url, fd, onUpload);
    } catch (e) {
      setStatus(e.message === 'cancelled' ? 'Cancelled.' : 'The request failed: ' + e.message + '.', e.message !== 'cancelled');
      return;
    } finally {
      progressStop();
    }
    if (r.status === 401 || r.status === 403) {
      setToken('');
      setStatus('The API did not accept the token.', true);
      askToken(r.status === 403 ? 'That token was not accepted.' : 'This server needs a token.');
      return;
    }
    if (r.status !== 200 || !r.json) {
      const wait = r.retryAfter ? ' Try again in ' + r.retryAfter + ' s.' : '';
      setStatus('The server said: ' + errorText(r) + '.' + wait, true);
      return;
    }
    showResult(r, files, everything);
  }

  // ---- progress ----

  let ticker = 0;
  let phase = '';
  let started = 0;

  function progressStart(n) {
    const prog = $('progress');
    prog.value = 0;
    phase = 'Uploading ' + n + (n === 1 ? ' image' : ' images');
    started = performance.now();
    $('progress-row').hidden = false;
    $('rank').disabled = true;
    $('cancel').hidden = false;
    $('results').setAttribute('aria-busy', 'true');
    tick();
    ticker = setInterval(tick, 100);
  }

  function tick() {
    const s = ((performance.now() - started) / 1000).toFixed(1);
    $('progress-text').textContent = phase + '… ' + s + ' s';
  }

  function onUpload(e) {
    if (!e.lengthComputable) return;
    const prog = $('progress');
    if (e.loaded >= e.total) {
      prog.removeAttribute('value'); // indeterminate while the models run
      phase = 'Scoring';
    } else {
      prog.value = e.loaded / e.total;
    }
  }

  function progressStop() {
    clearInterval(ticker);
    state.xhr = null;
    $('progress-row').hidden = true;
    $('rank').disabled = false;
    $('cancel').hidden = true;
    $('results').removeAttribute('aria-busy');
  }

  // ---- the answer ----

  // toEntry keeps an answer item's numeric fields as its scores, whatever
  // their names, so that models added to the server later show up.
  function toEntry(item, index, files) {
    const scores = {};
    for (const [k, v] of Object.entries(item)) {
      if (k !== 'index' && typeof v === 'number' && Number.isFinite(v)) scores[k] = v;
    }
    return { index, scores, error: item.error || null, file: files[index] };
  }

  // addICTHP computes the paper's group score, ict × softmax(hp_logit), as
  // the server's /v1/rank does (SPEC §1), for answers of /v1/score.
  function addICTHP(entries) {
    const ok = entries.filter((e) => !e.error);
    if (!ok.length || !ok.every((e) => 'ict' in e.scores && 'hp_logit' in e.scores)) return;
    let m = -Infinity;
    for (const e of ok) m = Math.max(m, e.scores.hp_logit);
    let sum = 0;
    const w = ok.map((e) => {
      const x = Math.exp(e.scores.hp_logit - m);
      sum += x;
      return x;
    });
    ok.forEach((e, k) => { e.scores.ict_hp = e.scores.ict * w[k] / sum; });
  }

  function showResult(r, files, viaRank) {
    const json = r.json;
    const items = viaRank ? json.ranking : json.scores;
    if (!Array.isArray(items)) {
      setStatus('The server\'s answer has no ' + (viaRank ? '"ranking"' : '"scores"') + '.', true);
      return;
    }
    const entries = items.map((it, i) => toEntry(it, viaRank ? it.index : i, files));
    if (!viaRank) addICTHP(entries);
    const names = [];
    for (const e of entries) for (const k of Object.keys(e.scores)) if (!names.includes(k)) names.push(k);
    const first = ['ict_hp', 'ict', 'hp', 'imagereward'].filter((n) => names.includes(n));
    const ordered = first.concat(names.filter((n) => !first.includes(n)));
    const old = state.result ? state.result.files.map((f) => f.url) : [];
    state.result = { entries, names: ordered, files };
    release(old);

    const sel = $('sort');
    sel.replaceChildren();
    for (const n of ordered) {
      const o = document.createElement('option');
      o.value = n;
      o.textContent = n === 'ict_hp' ? 'ICT-HP (paper)' : label(n);
      sel.append(o);
    }
    sel.value = ordered[0] || '';
    const failed = entries.filter((e) => e.error).length;
    const ok = entries.length - failed;
    const parts = [ok + (ok === 1 ? ' image' : ' images') + ' scored'];
    if (failed) parts.push(failed + ' failed');
    parts.push(Math.round(r.ms) + ' ms');
    parts.push((viaRank ? 'POST /v1/rank' : 'POST /v1/score'));
    $('summary').textContent = parts.join(' · ');
    $('summary').dataset.latencyMs = String(r.ms);
    $('summary').title = 'request ' + r.requestId;
    $('results').hidden = false;
    renderCards();
    setStatus('Ranked ' + entries.length + (entries.length === 1 ? ' image' : ' images') + ' in ' + Math.round(r.ms) + ' ms.');
  }

  // sortEntries orders by one score, best first; ties keep the server's
  // order, and images that failed come last.
  function sortEntries(entries, key) {
    const val = (e) => (e.error || !(key in e.scores) ? -Infinity : e.scores[key]);
    return entries
      .map((e, i) => ({ e, i }))
      .sort((a, b) => {
        if (!!a.e.error !== !!b.e.error) return a.e.error ? 1 : -1;
        const d = val(b.e) - val(a.e);
        return d > 0 ? 1 : d < 0 ? -1 : a.i - b.i;
      })
      .map((x) => x.e);
  }

  // scales returns, per score, how to turn a value into a bar width in
  // [0, 1]: relative to the best of the set when all are positive, else
  // from the lowest to the highest.
  function scales(entries, names) {
    const out = {};
    for (const n of names) {
      const vs = entries.filter((e) => !e.error && n in e.scores).map((e) => e.scores[n]);
      const lo = Math.min(...vs);
      const hi = Math.max(...vs);
      if (lo >= 0) out[n] = (v) => (hi > 0 ? v / hi : 1);
      else out[n] = (v) => (hi > lo ? (v - lo) / (hi - lo) : 1);
    }
    return out;
  }

  function short(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
    return v.toFixed(4);
  }

  function renderCards() {
    if (!state.result) return;
    const { entries, names } = state.result;
    const key = $('sort').value;
    const sc = scales(entries, names);
    const ol = $('cards');
    ol.replaceChildren();
    sortEntries(entries, key).forEach((e, pos) => ol.append(card(e, pos + 1, names, sc)));
  }

  function card(e, rank, names, sc) {
    const li = document.createElement('li');
    li.className = 'card' + (e.error ? ' failed' : '');
    li.tabIndex = 0;
    li.dataset.index = String(e.index);
    const fname = e.file ? e.file.file.name : 'image ' + e.index;
    li.setAttribute('aria-label', (e.error ? 'Failed: ' : 'Rank ' + rank + ': ') + fname);

    const head = document.createElement('div');
    head.className = 'card-head';
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = e.error ? '–' : String(rank);
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = fname;
    name.title = fname;
    head.append(badge, name);
    li.append(head);
    if (e.file) li.append(thumbImage(e.file.url, fname));

    if (e.error) {
      const p = document.createElement('p');
      p.className = 'error card-error';
      p.textContent = (e.error.message || 'failed') + (e.error.code ? ' (' + e.error.code + ')' : '');
      li.append(p);
      return li;
    }
    const dl = document.createElement('dl');
    dl.className = 'scores';
    for (const n of names) {
      if (n in e.scores) dl.append(scoreRow(n, e.scores[n], sc[n]));
    }
    li.append(dl);
    return li;
  }

  function scoreRow(n, v, scale) {
    const row = document.createElement('div');
    row.className = 'score' + (n === 'ict_hp' ? ' main' : '');
    row.dataset.score = n;
    row.dataset.value = String(v); // shortest round-trip form: the exact number
    row.title = label(n) + ' = ' + String(v);
    const dt = document.createElement('dt');
    dt.textContent = label(n);
    const dd = document.createElement('dd');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.width = (100 * Math.min(1, Math.max(0.02, scale(v)))).toFixed(1) + '%';
    bar.append(fill);
    const num = document.createElement('span');
    num.className = 'num';
    num.textContent = short(v);
    const exact = document.createElement('span');
    exact.className = 'exact';
    exact.textContent = String(v);
    dd.append(bar, num, exact);
    row.append(dt, dd);
    return row;
  }

  // ---- start ----

  function init() {
    setupDrop();
    renderThumbs();
    $('rank-form').addEventListener('submit', rank);
    $('cancel').addEventListener('click', () => { if (state.xhr) state.xhr.abort(); });
    $('clear').addEventListener('click', () => {
      const urls = state.files.map((f) => f.url);
      state.files = [];
      release(urls);
      setFileNote('');
      renderThumbs();
    });
    $('sort').addEventListener('change', renderCards);
    $('token-dialog').addEventListener('close', onTokenClose);
    $('token-button').addEventListener('click', () => askToken(''));
    $('token-button').hidden = !cfg.auth;
    loadModels();
  }

  init();
}());
