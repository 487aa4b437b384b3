/* gdb-memleak HTML report: draws the data embedded by core/reports/html.py. No network, no libraries. */
(function () {
  'use strict';

  const DATA = JSON.parse(document.getElementById('memleak-data').textContent);
  const MIN_PX = 2;          // boxes narrower than this merge into one grey box per parent (as flamegraph.pl drops them)
  const ROW = 18;            // px per stack level
  const TABLE_PAGE = 500;    // table rows drawn at once ("show more" draws the next page)
  const MAX_MARKS = 400;     // heap-error marks drawn on the timeline
  const MAX_ERRORS = 1000;   // heap errors listed

  const $ = (id) => document.getElementById(id);
  const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);
  const fmt = (n) => Math.round(n).toLocaleString('en-US');
  const plural = (n, word) => fmt(n) + ' ' + word + (n === 1 ? '' : 's');
  function human(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(n < 10 ? 1 : 0) : Math.round(n)) + ' ' + units[i];
  }
  const humanCount = (n) => (n >= 1e6 ? (n / 1e6).toFixed(1) + 'M' : n >= 1e4 ? (n / 1e3).toFixed(0) + 'k' : fmt(n));
  const pct = (a, b) => (b > 0 ? (100 * a / b).toFixed(a === b ? 0 : 1) + '%' : '');

  // ---------------------------------------------------------------------------------------------------------------
  // Model of one process: the flame tree merges the embedded stack tree (one node per frame) by function name.
  function Model(p) {
    this.p = p;
    const K = this.K = p.kinds.length;
    const frames = p.frames, nodes = p.nodes, T = nodes.length / 2;
    const parent = [-1], name = ['all'], inline = [0], children = [[]], maps = [new Map()];
    const toFlame = new Int32Array(T);
    for (let i = 0; i < T; i++) {
      const up = nodes[2 * i], frame = frames[nodes[2 * i + 1]];
      const fp = up < 0 ? 0 : toFlame[up];
      let m = maps[fp];
      if (!m) m = maps[fp] = new Map();
      let id = m.get(frame[0]);
      if (id === undefined) {
        id = name.length;
        m.set(frame[0], id);
        parent.push(fp); name.push(frame[0]); inline.push(frame[5]); children.push(null); maps.push(null);
        (children[fp] || (children[fp] = [])).push(id);
      } else if (frame[5]) {
        inline[id] = 1;
      }
      toFlame[i] = id;
    }
    const N = name.length;
    Object.assign(this, { parent, name, inline, children, toFlame, N });
    // values per node and kind: self, then totals (a child's id is always larger than its parent's)
    const bytes = new Float64Array(N * K), blocks = new Float64Array(N * K), allocBits = new Int32Array(N);
    const allocators = [], allocIndex = new Map();
    for (const g of p.groups) {
      const f = g[5] < 0 ? 0 : toFlame[g[5]];
      bytes[f * K + g[0]] += g[2];
      blocks[f * K + g[0]] += g[3];
      if (!allocIndex.has(g[1])) { allocIndex.set(g[1], allocators.length); allocators.push(g[1]); }
      allocBits[f] |= 1 << Math.min(allocIndex.get(g[1]), 30);
    }
    for (let i = N - 1; i > 0; i--) {
      const up = parent[i];
      for (let k = 0; k < K; k++) { bytes[up * K + k] += bytes[i * K + k]; blocks[up * K + k] += blocks[i * K + k]; }
      allocBits[up] |= allocBits[i];
    }
    Object.assign(this, { bytes, blocks, allocBits, allocators });
    // stack-tree nodes on some leak group's stack (error stacks share the tree but hold no live bytes)
    const onGroup = this.onGroup = new Uint8Array(T);
    for (const g of p.groups) for (let n = g[5]; n >= 0 && !onGroup[n]; n = nodes[2 * n]) onGroup[n] = 1;
    this.errorNodes = p.errors.map((e) => (e.node < 0 ? 0 : toFlame[e.node]));
  }

  Model.prototype.values = function (enabled, metric) {
    const K = this.K, src = metric === 'blocks' ? this.blocks : this.bytes, out = new Float64Array(this.N);
    for (let i = 0; i < this.N; i++) {
      let s = 0;
      for (let k = 0; k < K; k++) if (enabled[k]) s += src[i * K + k];
      out[i] = s;
    }
    return out;
  };

  Model.prototype.locations = function (id) {
    const seen = new Map(), frames = this.p.frames, nodes = this.p.nodes;
    for (let i = 0; i < this.toFlame.length; i++) {
      if (this.toFlame[i] !== id || !this.onGroup[i]) continue;
      const f = frames[nodes[2 * i + 1]];
      const where = f[1] && f[2] ? f[1] + ':' + f[2] : (f[3] || '??') + ' ' + f[4];
      seen.set(where, (seen.get(where) || 0) + 1);
    }
    return Array.from(seen.keys());
  };

  Model.prototype.stack = function (node) {
    const out = [];
    for (let n = node; n >= 0; n = this.p.nodes[2 * n]) out.push(this.p.frames[this.p.nodes[2 * n + 1]]);
    return out;   // innermost first
  };

  // ---------------------------------------------------------------------------------------------------------------
  const state = { proc: 0, model: null, metric: 'bytes', flip: false, zoom: 0, flameKinds: null, values: null,
                  hits: null, search: '', sortKey: null, sortDir: 1, tableKinds: null, filter: '', limit: TABLE_PAGE,
                  open: new Set() };

  function kindKey(p, k) { return p.kinds[k][0]; }
  function frameText(f) {
    const where = f[1] && f[2] ? f[1] + ':' + f[2] : f[3];
    return f[0] + ' (' + where + ')';
  }

  function legend(el, p, checked, onChange) {
    el.innerHTML = p.kinds.map((k, i) =>
      '<label class="k-' + esc(k[0]) + '"><input type="checkbox" data-k="' + i + '"' + (checked[i] ? ' checked' : '') +
      '><span class="swatch"></span>' + esc(k[1]) + '</label>').join('');
    el.onchange = (ev) => { checked[+ev.target.dataset.k] = ev.target.checked; onChange(); };
  }

  // -- flame graph ------------------------------------------------------------------------------------------------
  function recompute() {
    state.values = state.model.values(state.flameKinds, state.metric);
    if (!(state.values[state.zoom] > 0)) state.zoom = 0;
    applySearch();
  }

  function dominant(m, id) {
    const K = m.K, src = state.metric === 'blocks' ? m.blocks : m.bytes;
    let best = -1, bestV = 0, parts = [];
    for (let k = 0; k < K; k++) {
      if (!state.flameKinds[k]) continue;
      const v = src[id * K + k];
      if (v > 0) parts.push([k, v]);
      if (v > bestV) { bestV = v; best = k; }
    }
    return { best, parts };
  }

  function drawFlame() {
    const m = state.model, p = m.p, el = $('flame'), val = state.values;
    const W = el.clientWidth || 1000;
    const root = state.zoom, total = val[root];
    if (!(val[0] > 0)) {
      el.style.height = '';
      el.innerHTML = '<div class="empty">No live bytes to draw: nothing of the selected kinds is still allocated ' +
        '(suppressed blocks are not drawn).</div>';
      return;
    }
    const boxes = [];
    const chain = [];
    for (let a = root; a !== -1; a = m.parent[a]) chain.unshift(a);
    chain.forEach((a, d) => boxes.push([a, 0, 1, d, a !== root ? 1 : 0, 0]));
    const stack = [[root, 0, chain.length - 1]];
    let maxDepth = chain.length - 1;
    while (stack.length) {
      const [id, x0, depth] = stack.pop();
      const kids = m.children[id];
      if (!kids) continue;
      const live = kids.filter((c) => val[c] > 0).sort((a, b) => val[b] - val[a]);
      let x = x0, merged = 0, mergedCount = 0;
      for (const c of live) {
        const v = val[c];
        if (v / total * W < MIN_PX) { merged += v; mergedCount++; continue; }
        boxes.push([c, x / total, v / total, depth + 1, 0, 0]);
        stack.push([c, x, depth + 1]);
        x += v;
      }
      if (mergedCount && merged / total * W >= 0.5) {
        boxes.push([id, x / total, merged / total, depth + 1, 0, mergedCount]);
      }
      if (live.length) maxDepth = Math.max(maxDepth, depth + 1);
    }
    // heap errors: marked on the deepest frame of their stack that is drawn
    const errorsAt = new Map();
    m.errorNodes.forEach((f, i) => {
      let n = f;
      while (n > 0 && !(val[n] > 0)) n = m.parent[n];
      if (!errorsAt.has(n)) errorsAt.set(n, []);
      errorsAt.get(n).push(i);
    });
    const html = [];
    for (const [id, x, w, d, anc, mergedCount] of boxes) {
      const top = (state.flip ? maxDepth - d : d) * ROW;
      const px = w * W;
      const style = 'left:' + (x * 100).toFixed(4) + '%;width:' + (w * 100).toFixed(4) + '%;top:' + top + 'px';
      if (mergedCount) {
        html.push('<div class="box merged" data-parent="' + id + '" data-count="' + mergedCount + '" style="' +
          style + '">' + (px > 40 ? esc(mergedCount + ' smaller') : '') + '</div>');
        continue;
      }
      const { best, parts } = dominant(m, id);
      let cls = 'box k-' + (best >= 0 ? kindKey(p, best) : 'unfreed');
      let extra = '';
      if (parts.length > 1) {
        const sum = parts.reduce((s, q) => s + q[1], 0);
        let at = 0;
        const stops = parts.map(([k, v]) => {
          const from = at; at += 100 * v / sum;
          return 'var(--' + kindKey(p, k) + ') ' + from.toFixed(2) + '% ' + at.toFixed(2) + '%';
        });
        extra = ';background-image:linear-gradient(to right,' + stops.join(',') + ')';
      }
      if (anc) cls += ' anc';
      if (state.hits) cls += state.hits[id] ? ' hit' : ' dim';
      const errs = errorsAt.get(id);
      if (errs) cls += ' has-error';
      const label = (id === 0 ? 'all' : m.name[id]) + (m.inline[id] ? ' [inlined]' : '');
      html.push('<div class="' + cls + '" data-id="' + id + '" data-name="' + esc(m.name[id]) + '" data-value="' +
        val[id] + '" style="' + style + extra + '">' + (px > 22 ? esc(label) : '') +
        (errs ? '<b class="err" data-errors="' + errs.join(',') + '" title="' +
          esc(errs.map((i) => p.errors[i].title).join(', ')) + '">' + (errs.length > 1 ? errs.length : '') +
          '\u2716</b>' : '') + '</div>');
    }
    el.style.height = ((maxDepth + 1) * ROW + 2) + 'px';
    el.innerHTML = html.join('');
  }

  function tooltipFor(box) {
    const m = state.model, p = m.p, val = state.values, unit = state.metric === 'blocks' ? 'block' : 'byte';
    if (box.classList.contains('merged')) {
      return '<b>' + esc(box.dataset.count) + ' smaller frames</b> under ' + esc(m.name[+box.dataset.parent]) +
        '<br>too narrow to draw at this zoom: click to zoom into ' + esc(m.name[+box.dataset.parent]);
    }
    const id = +box.dataset.id, K = m.K;
    const rows = ['<b>' + esc(id === 0 ? 'all live blocks' : m.name[id]) + '</b>' +
      (m.inline[id] ? ' <span class="inline-tag">(inlined)</span>' : '')];
    if (id !== 0) {
      const locs = m.locations(id);
      rows.push('<span class="loc">' + esc(locs.slice(0, 4).join(', ')) +
        (locs.length > 4 ? ' (+' + (locs.length - 4) + ' more)' : '') + '</span>');
    }
    let b = 0, n = 0;
    const kinds = [];
    for (let k = 0; k < K; k++) {
      if (!state.flameKinds[k]) continue;
      const kb = m.bytes[id * K + k], kn = m.blocks[id * K + k];
      b += kb; n += kn;
      if (kn) kinds.push(esc(p.kinds[k][1]) + ': ' + plural(kb, 'byte') + ' in ' + plural(kn, 'block'));
    }
    rows.push(plural(b, 'byte') + ' in ' + plural(n, 'block') + ' (' + pct(val[id], val[0]) + ' of all ' + unit + 's)');
    if (kinds.length > 1 || (kinds.length === 1 && id !== 0)) rows.push(kinds.join('<br>'));
    const allocs = m.allocators.filter((_, i) => m.allocBits[id] & (1 << Math.min(i, 30)));
    if (allocs.length) rows.push('allocated by ' + esc(allocs.join(', ')));
    const err = box.querySelector('.err');
    if (err) {
      for (const i of err.dataset.errors.split(',')) rows.push('<span class="e">' + esc(p.errors[+i].headline) + '</span>');
    }
    return rows.join('<br>');
  }

  function applySearch() {
    const m = state.model, text = state.search.trim();
    const out = $('search-result');
    if (!text) { state.hits = null; out.textContent = ''; return; }
    let re;
    try { re = new RegExp(text, 'i'); } catch (e) { re = new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i'); }
    const hits = new Uint8Array(m.N), covered = new Uint8Array(m.N), val = state.values;
    let matched = 0, count = 0;
    for (let i = 1; i < m.N; i++) {
      hits[i] = re.test(m.name[i]) ? 1 : 0;
      const up = covered[m.parent[i]];
      if (hits[i] && val[i] > 0) {
        count++;
        if (!up) matched += val[i];
      }
      covered[i] = up || hits[i];
    }
    state.hits = hits;
    const unit = state.metric === 'blocks' ? 'block' : 'byte';
    out.textContent = count ? 'matched ' + plural(count, 'frame') + ': ' + plural(matched, unit) + ' (' +
      pct(matched, val[0]) + ')' : 'no frame matches';
  }

  // -- timeline ---------------------------------------------------------------------------------------------------
  const LABEL_ROW = 13, LABEL_ROWS = 4, LABEL_GAP = 6;   // px per row of mark labels, rows at most, px between labels

  // Rows for the marks' labels so that none overlaps another: each label ([time, text, bold], in priority order:
  // snapshots, then errors) takes the first row where it clears the labels already there, measured in the page's
  // font. {of: row per label (-1: no room), count: rows used}.
  function labelRows(el, W, labels, X) {
    const ctx = document.createElement('canvas').getContext('2d'), family = getComputedStyle(el).fontFamily;
    const placed = [], of = [];
    for (const [t, text, bold] of labels) {
      ctx.font = (bold ? '600 ' : '') + '11px ' + family;
      const w = ctx.measureText(text).width, x = X(t), left = x > W / 2 ? x - 3 - w : x + 3, right = left + w;
      let row = 0;
      while (row < placed.length && placed[row].some(([a, b]) => left < b + LABEL_GAP && a < right + LABEL_GAP)) row++;
      if (row === LABEL_ROWS) { of.push(-1); continue; }
      if (row === placed.length) placed.push([]);
      placed[row].push([left, right]);
      of.push(row);
    }
    return { of, count: Math.max(placed.length, 1) };
  }

  // The stacks that keep growing (core/growth.py): each one's live bytes at the checkpoints, a line per stack in a
  // panel of its own scale below the heap's, with a legend (site, rate) in its top-left corner.
  const GROWTH_COLORS = 5;  // .growth.g0 .. .g4 in the style sheet
  function growthPanel(out, p, growth, y0, PH, X, ML, W, MR) {
    const max = growth.reduce((a, g) => g[3].reduce((b, q) => Math.max(b, q[1]), a), 1);
    const Y = (v) => y0 + PH - v / max * (PH - 4);
    growth.forEach(([site, allocator, rate, samples], i) => {
      const label = (site >= 0 ? frameText(p.frames[site]) : '??') + ' (' + allocator + '): +' + human(rate) + '/s';
      const d = samples.map((q, j) => (j ? 'L' : 'M') + X(q[0]).toFixed(1) + ',' + Y(q[1]).toFixed(1)).join('');
      const name = site >= 0 ? p.frames[site][0] : '??', live = plural(samples[samples.length - 1][1], 'byte');
      out.push('<g class="growth g' + (i % GROWTH_COLORS) + '" data-site="' + esc(name) + '"><title>' +
        esc(label + ', ' + live + ' live') + '</title><path d="' + d + '"/>' +
        samples.map((q) => '<circle cx="' + X(q[0]).toFixed(1) + '" cy="' + Y(q[1]).toFixed(1) + '" r="2"/>').join('') +
        '<text x="' + (ML + 6) + '" y="' + (y0 + 12 + i * LABEL_ROW) + '">' + esc(label) + '</text></g>');
    });
    out.push('<line class="axis" x1="' + ML + '" y1="' + (y0 + PH) + '" x2="' + (W - MR) + '" y2="' + (y0 + PH) + '"/>',
      '<line class="axis" x1="' + ML + '" y1="' + y0 + '" x2="' + ML + '" y2="' + (y0 + PH) + '"/>',
      '<text x="' + (ML - 6) + '" y="' + (Y(max) + 4) + '" text-anchor="end">' + esc(human(max)) + '</text>',
      '<text x="' + (ML - 6) + '" y="' + (y0 + PH) + '" text-anchor="end">0</text>',
      '<text x="' + (ML - 6) + '" y="' + (y0 + PH / 2 + 4) + '" text-anchor="end">growing</text>');
  }

  function drawTimeline() {
    const p = state.model.p, el = $('timeline'), pts = p.timeline.points, marks = p.timeline.marks;
    const growth = p.timeline.growth || [];
    if (!pts.length) {
      el.innerHTML = '<p class="empty">No samples: no allocation or free was tracked.</p>';
      return;
    }
    const W = Math.max(el.clientWidth || 900, 300), ML = 64, MR = 14, PH = 110, GAP = 26;
    let t0 = Infinity, t1 = -Infinity;
    const sampled = [].concat(...growth.map((g) => g[3].map((q) => q[0])));
    for (const t of pts.map((q) => q[0]).concat(marks.map((q) => q[1]), p.errors.map((e) => e.time), sampled)) {
      t0 = Math.min(t0, t); t1 = Math.max(t1, t);
    }
    const span = t1 > t0 ? t1 - t0 : 1;
    const X = (t) => ML + (t - t0) / span * (W - ML - MR);
    const errors = p.errors.slice(0, MAX_MARKS);
    const rows = labelRows(el, W, marks.map((q) => [q[1], q[0], false]).concat(errors.map((e) => [e.time, e.title,
      true])), X);
    const NP = growth.length ? 3 : 2, TOP = 18 + (rows.count - 1) * LABEL_ROW, H = TOP + NP * PH + (NP - 1) * GAP + 24;
    const out = ['<svg width="' + W + '" height="' + H + '" viewBox="0 0 ' + W +
      ' ' + H + '">'];
    const panels = [['bytes', 1, 3, TOP, human], ['blocks', 2, 4, TOP + PH + GAP, humanCount]];
    for (const [label, vi, pi, y0, fmtY] of panels) {
      const max = pts.reduce((a, q) => Math.max(a, q[pi]), 1);
      const Y = (v) => y0 + PH - v / max * (PH - 4);
      // steps: a value holds until the next point; a point's peak covers the span since the previous one
      let area = 'M' + X(pts[0][0]).toFixed(1) + ',' + Y(0).toFixed(1) + 'V' + Y(pts[0][pi]).toFixed(1);
      let line = 'M' + X(pts[0][0]).toFixed(1) + ',' + Y(pts[0][vi]).toFixed(1);
      for (let i = 1; i < pts.length; i++) {
        const x = X(pts[i][0]).toFixed(1);
        area += 'V' + Y(pts[i][pi]).toFixed(1) + 'H' + x;
        line += 'H' + x + 'V' + Y(pts[i][vi]).toFixed(1);
      }
      area += 'L' + X(pts[pts.length - 1][0]).toFixed(1) + ',' + Y(0).toFixed(1) + 'Z';
      out.push('<path class="peak ' + label + '" d="' + area + '"/>', '<path class="value ' + label + '" d="' + line +
        '"/>', '<line class="axis" x1="' + ML + '" y1="' + (y0 + PH) + '" x2="' + (W - MR) + '" y2="' + (y0 + PH) + '"/>',
      '<line class="axis" x1="' + ML + '" y1="' + y0 + '" x2="' + ML + '" y2="' + (y0 + PH) + '"/>',
      '<text x="' + (ML - 6) + '" y="' + (Y(max) + 4) + '" text-anchor="end">' + esc(fmtY(max)) + '</text>',
      '<text x="' + (ML - 6) + '" y="' + (y0 + PH) + '" text-anchor="end">0</text>',
      '<text x="' + (ML - 6) + '" y="' + (y0 + PH / 2 + 4) + '" text-anchor="end">' + label + '</text>');
    }
    if (growth.length) growthPanel(out, p, growth, TOP + 2 * (PH + GAP), PH, X, ML, W, MR);
    const axisY = TOP + NP * PH + (NP - 1) * GAP;
    for (let i = 0; i <= 5; i++) {
      const t = t0 + span * i / 5;
      out.push('<text x="' + X(t).toFixed(1) + '" y="' + (axisY + 16) + '" text-anchor="' +
        (i === 0 ? 'start' : i === 5 ? 'end' : 'middle') + '">' +
        (t1 > t0 ? t.toPrecision(3) + ' s' : '') + '</text>');
    }
    // a label goes on its row above the plot; one that found no row is left out (its line and tooltip stay)
    const mark = (cls, t, label, title, data, row) => out.push('<g class="mark ' + cls + '"' + data + '><title>' +
      esc(title) + '</title><line x1="' + X(t).toFixed(1) + '" y1="' + (TOP - 4) + '" x2="' + X(t).toFixed(1) +
      '" y2="' + axisY + '"/>' + (row < 0 ? '' : '<text x="' + (X(t) > W / 2 ? X(t) - 3 : X(t) + 3).toFixed(1) +
      '" y="' + (12 + row * LABEL_ROW) + '" text-anchor="' + (X(t) > W / 2 ? 'end' : 'start') + '">' + esc(label) +
      '</text>') + '</g>');
    marks.forEach(([name, t, b, n], i) => {
      mark('mark-snapshot', t, name, 'snapshot ' + name + ' at ' + t + ' s: ' + plural(b, 'byte') + ' in ' +
        plural(n, 'block') + ' live', ' data-name="' + esc(name) + '"', rows.of[i]);
    });
    errors.forEach((e, i) => mark('mark-error', e.time, e.title, e.title + ' at ' + e.time +
      ' s: ' + e.headline, ' data-type="' + esc(e.type) + '" data-error="' + i + '"', rows.of[marks.length + i]));
    out.push('<line class="cursor" y1="' + TOP + '" y2="' + axisY + '" x1="-10" x2="-10"/>',
      '<text class="readout" x="' + ML + '" y="' + (H - 2) + '"></text>', '</svg>');
    el.innerHTML = out.join('');
    const svg = el.querySelector('svg'), cursor = svg.querySelector('.cursor'), readout = svg.querySelector('.readout');
    svg.onmousemove = (ev) => {
      const r = svg.getBoundingClientRect();
      const t = t0 + (ev.clientX - r.left - ML) / (W - ML - MR) * span;
      let lo = 0, hi = pts.length - 1;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (pts[mid][0] < t) lo = mid + 1; else hi = mid; }
      const q = pts[lo];
      cursor.setAttribute('x1', X(q[0])); cursor.setAttribute('x2', X(q[0]));
      readout.textContent = q[0] + ' s: ' + plural(q[1], 'byte') + ' in ' + plural(q[2], 'block') + ' live (peak ' +
        'since the previous sample: ' + plural(q[3], 'byte') + ', ' + plural(q[4], 'block') + ')';
    };
  }

  // -- table ------------------------------------------------------------------------------------------------------
  const SORTS = {
    kind: (g) => g[0], bytes: (g) => g[2] + g[8], blocks: (g) => g[3], allocator: (g) => g[1], first: (g) => g[4],
    site: (g) => siteText(g),
  };
  // a loss record's size as `leaks` gives it: "128 (32 direct, 96 indirect)" when blocks are lost through it
  function sizeText(g) {
    return g[8] ? fmt(g[2] + g[8]) + ' (' + fmt(g[2]) + ' direct, ' + fmt(g[8]) + ' indirect)' : fmt(g[2]);
  }
  function siteText(g) { return g[6] >= 0 ? frameText(state.model.p.frames[g[6]]) : '??'; }

  function tableRows() {
    const p = state.model.p, f = state.filter.trim().toLowerCase();
    let rows = [];
    p.groups.forEach((g, i) => {
      if (!state.tableKinds[g[0]]) return;
      if (f && !(g[1].toLowerCase().includes(f) || siteText(g).toLowerCase().includes(f) ||
        state.model.stack(g[5]).some((fr) => frameText(fr).toLowerCase().includes(f)))) return;
      rows.push(i);
    });
    if (state.sortKey) {
      const key = SORTS[state.sortKey], dir = state.sortDir;
      rows = rows.map((i) => [key(p.groups[i]), i]).sort((a, b) => (a[0] < b[0] ? -dir : a[0] > b[0] ? dir : a[1] - b[1]))
        .map((q) => q[1]);
    }
    return rows;
  }

  function detailHtml(g) {
    const p = state.model.p;
    const lines = state.model.stack(g[5]).map((f, i) => '   ' + (i ? 'by' : 'at') + ' ' + f[4] + ': ' +
      esc(frameText(f)) + (f[5] ? ' <span class="inline-tag">(inlined)</span>' : ''));
    return '<td colspan="7"><pre>' + esc((g[8] ? sizeText(g) + ' bytes' : plural(g[2], 'byte')) + ' in ' +
      plural(g[3], 'block') + ' are ' +
      p.kinds[g[0]][1] + ', allocated by ' + g[1] + ' (first is allocation #' + g[4] + ')') + '\n' + lines.join('\n') +
      '</pre>' + (g[7] >= 0 ? p.sources[g[7]] : '') + '</td>';
  }

  function drawTable() {
    const p = state.model.p, rows = tableRows(), tbody = $('leaks').tBodies[0];
    let bytes = 0, blocks = 0;
    for (const i of rows) { bytes += p.groups[i][2]; blocks += p.groups[i][3]; }
    const kinds = p.kinds.filter((_, k) => state.tableKinds[k]).map((k) => k[1]).join(', ') || 'no kind';
    $('table-caption').textContent = 'LEAKS: ' + plural(bytes, 'byte') + ' in ' + plural(blocks, 'block') + ' from ' +
      plural(rows.length, 'allocation stack') + ' (' + kinds + ')' +
      (rows.length > state.limit ? ' (showing ' + fmt(state.limit) + ')' : '');
    const html = [];
    for (const i of rows.slice(0, state.limit)) {
      const g = p.groups[i], k = p.kinds[g[0]], open = state.open.has(i);
      html.push('<tr class="row' + (open ? ' open' : '') + '" data-g="' + i + '"><td></td><td class="kind-cell k-' +
        esc(k[0]) + '"><span class="swatch"></span> ' + esc(k[1]) + '</td><td class="num">' + sizeText(g) +
        '</td><td class="num">' + fmt(g[3]) + '</td><td>' + esc(g[1]) + '</td><td class="num">#' + g[4] +
        '</td><td class="site">' + esc(siteText(g)) + '</td></tr>');
      if (open) html.push('<tr class="detail" data-g="' + i + '">' + detailHtml(g) + '</tr>');
    }
    tbody.innerHTML = html.join('');
    const more = $('more');
    more.hidden = rows.length <= state.limit;
    more.textContent = 'show ' + fmt(Math.min(TABLE_PAGE, rows.length - state.limit)) + ' more of ' +
      fmt(rows.length - state.limit);
    for (const th of $('leaks').tHead.rows[0].cells) {
      th.classList.toggle('sorted', th.dataset.key === state.sortKey);
      th.classList.toggle('asc', th.dataset.key === state.sortKey && state.sortDir > 0);
      th.classList.toggle('desc', th.dataset.key === state.sortKey && state.sortDir < 0);
    }
  }

  // -- errors and overview ----------------------------------------------------------------------------------------
  function drawErrors() {
    const p = state.model.p, el = $('errors');
    if (!p.errors.length) { el.innerHTML = '<p class="none">No heap errors.</p>'; return; }
    el.innerHTML = p.errors.slice(0, MAX_ERRORS).map((e, i) => '<div class="error" id="error-' + i + '" data-type="' +
      esc(e.type) + '"><h3>' + esc(e.headline) + '</h3><pre>' + esc(e.text.split('\n').slice(1).join('\n')) +
      '</pre></div>').join('') + (p.errors.length > MAX_ERRORS ? '<p class="none">' +
      fmt(p.errors.length - MAX_ERRORS) + ' more heap errors not listed (see the text or JSON report).</p>' : '');
  }

  function drawOverview() {
    const p = state.model.p;
    $('header-text').textContent = p.header.trim();
    $('summary-text').textContent = p.summary.trim();
    const v = $('verdict');
    v.textContent = 'SUMMARY: ' + p.verdict;
    v.className = p.verdict.startsWith('no heap errors') ? 'good' : 'bad';
  }

  // -- wiring -----------------------------------------------------------------------------------------------------
  function showProcess(index) {
    state.proc = index;
    const p = DATA.processes[index];
    state.model = new Model(p);
    state.zoom = 0;
    state.open = new Set();
    state.limit = TABLE_PAGE;
    state.flameKinds = p.kinds.map(() => true);
    state.tableKinds = p.kinds.map((k) => p.shown.includes(k[0]));
    legend($('flame-kinds'), p, state.flameKinds, () => { recompute(); drawFlame(); });
    legend($('table-kinds'), p, state.tableKinds, () => { state.limit = TABLE_PAGE; drawTable(); });
    recompute();
    drawOverview();
    drawFlame();
    drawTimeline();
    drawTable();
    drawErrors();
    document.title = 'gdb-memleak: ' + (p.argv[0] || 'process ' + p.pid);
  }

  function init() {
    $('version').textContent = DATA.tool + ' ' + DATA.version;
    const procs = DATA.processes;
    if (!procs.length) {
      document.querySelector('main').innerHTML = '<p>No process was tracked.</p>';
      return;
    }
    const pick = $('process');
    pick.innerHTML = procs.map((p, i) => '<option value="' + i + '">' + esc(p.pid + ' ' + (p.argv[0] || '?') +
      ' \u2014 ' + p.verdict) + '</option>').join('');
    $('process-pick').hidden = procs.length < 2;
    pick.onchange = () => showProcess(+pick.value);

    const flame = $('flame'), tip = $('tooltip');
    let tipFor = null;   // the box the tooltip describes: moving within it only moves the tooltip
    flame.addEventListener('mousemove', (ev) => {
      const box = ev.target.closest('.box');
      if (!box) { tip.hidden = true; return; }
      if (box !== tipFor) { tip.innerHTML = tooltipFor(box); tipFor = box; }
      tip.hidden = false;
      const x = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      const y = ev.clientY + 16 + tip.offsetHeight > window.innerHeight ? ev.clientY - tip.offsetHeight - 10 : ev.clientY + 16;
      tip.style.left = x + 'px';
      tip.style.top = y + 'px';
    });
    flame.addEventListener('mouseleave', () => { tip.hidden = true; });
    flame.addEventListener('click', (ev) => {
      const err = ev.target.closest('.err');
      if (err) {
        const target = $('error-' + err.dataset.errors.split(',')[0]);
        if (target) target.scrollIntoView({ block: 'center' });
        return;
      }
      const box = ev.target.closest('.box');
      if (!box) return;
      state.zoom = box.classList.contains('merged') ? +box.dataset.parent : +box.dataset.id;
      tip.hidden = true;
      drawFlame();
    });
    document.querySelectorAll('input[name=metric]').forEach((r) => r.addEventListener('change', () => {
      state.metric = r.value;
      recompute();
      drawFlame();
    }));
    $('flip').onclick = () => { state.flip = !state.flip; drawFlame(); };
    $('reset-zoom').onclick = () => { state.zoom = 0; drawFlame(); };
    let pending = 0;
    $('search').addEventListener('input', (ev) => {
      clearTimeout(pending);
      pending = setTimeout(() => { state.search = ev.target.value; applySearch(); drawFlame(); }, 120);
    });
    $('leaks').tHead.addEventListener('click', (ev) => {
      const th = ev.target.closest('th');
      if (!th || !th.dataset.key) return;
      if (state.sortKey === th.dataset.key) state.sortDir = -state.sortDir;
      else { state.sortKey = th.dataset.key; state.sortDir = ['bytes', 'blocks'].includes(th.dataset.key) ? -1 : 1; }
      drawTable();
    });
    $('leaks').tBodies[0].addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr.row');
      if (!tr) return;
      const i = +tr.dataset.g;
      if (state.open.has(i)) state.open.delete(i); else state.open.add(i);
      drawTable();
    });
    $('table-filter').addEventListener('input', (ev) => {
      clearTimeout(pending);
      pending = setTimeout(() => { state.filter = ev.target.value; state.limit = TABLE_PAGE; drawTable(); }, 150);
    });
    $('more').onclick = () => { state.limit += TABLE_PAGE; drawTable(); };
    let resize = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resize);
      resize = setTimeout(() => { drawFlame(); drawTimeline(); }, 150);
    });
    showProcess(0);
    document.body.dataset.ready = '1';
  }

  init();
}());
