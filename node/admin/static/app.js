// The status page: polls /api/status and redraws in place. Everything that
// came from the cluster (member names, addresses, errors) is inserted as
// text, never as HTML.
'use strict';

(() => {
  const SVGNS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#4f46e5', '#0ea5e9', '#10b981', '#f59e0b', '#ec4899', '#8b5cf6',
    '#14b8a6', '#f97316', '#64748b', '#84cc16', '#ef4444', '#06b6d4'];
  const R = 84; // the ring's radius in SVG units, as in index.html
  const CIRC = 2 * Math.PI * R;
  const KNOWN_STATES = ['alive', 'suspect', 'leaving', 'left', 'dead'];

  const $ = (id) => document.getElementById(id);

  let refreshMs = 1000;
  let prev = null; // the previous poll's counters, for rates
  let failures = 0;

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }

  // Formatting.
  function fmtInt(n) { return Number(n || 0).toLocaleString('en-US'); }
  function fmtCompact(n) {
    if (n == null || !isFinite(n)) return '–';
    if (n < 1000) return n < 10 && n > 0 ? n.toFixed(1) : Math.round(n).toString();
    const units = ['k', 'M', 'G', 'T'];
    let i = -1;
    do { n /= 1000; i++; } while (n >= 1000 && i < units.length - 1);
    return (n < 10 ? n.toFixed(1) : Math.round(n).toString()) + units[i];
  }
  function fmtBytes(n) {
    n = Number(n || 0);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toString() : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
  }
  function fmtMicros(us) {
    if (!us) return '–';
    if (us < 1000) return us.toFixed(us < 10 ? 1 : 0) + ' µs';
    if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 2 : 1) + ' ms';
    return (us / 1e6).toFixed(2) + ' s';
  }
  function fmtPct(f) { return (f * 100).toFixed(f < 0.1 ? 2 : 1) + '%'; }
  function hexVersion(s) {
    try { return BigInt(s).toString(16).padStart(16, '0'); } catch (e) { return String(s); }
  }
  function stateClass(s) { return KNOWN_STATES.includes(s) ? s : 'unknown'; }

  // rate returns per-second growth of a counter between two polls, or null
  // when there is no earlier sample or the counter went back (a restart).
  function rate(cur, before, seconds) {
    if (before == null || seconds <= 0 || cur < before) return null;
    return (cur - before) / seconds;
  }

  // colours gives each member a stable colour: by position among all the
  // names the page knows of, sorted.
  function colours(ov) {
    const names = new Set();
    for (const m of ov.node.members) names.add(m.name);
    for (const s of ov.node.ring.shares) names.add(s.name);
    const sorted = [...names].sort();
    const map = new Map();
    sorted.forEach((n, i) => map.set(n, PALETTE[i % PALETTE.length]));
    return map;
  }

  function render(ov) {
    refreshMs = Math.max(100, ov.refresh_ms || 1000);
    const t = Date.parse(ov.time) / 1000;
    const dt = prev ? t - prev.t : 0;
    const colour = colours(ov);
    const self = ov.node.name;
    const cluster = new Map(ov.cluster.map((n) => [n.name, n]));
    const shares = new Map(ov.node.ring.shares.map((s) => [s.name, s]));

    const nodeRates = new Map();
    for (const n of ov.cluster) {
      if (!n.error) nodeRates.set(n.name, rate(n.requests, prev && prev.nodes.get(n.name), dt));
    }
    const opRates = new Map();
    for (const o of ov.requests) opRates.set(o.op, rate(o.requests, prev && prev.ops.get(o.op), dt));

    renderHeader(ov);
    renderTiles(ov, nodeRates);
    renderRing(ov, colour, self);
    renderMembers(ov, colour, self, cluster, shares, nodeRates);
    renderOps(ov, opRates);
    renderStore(ov);

    prev = {
      t,
      nodes: new Map(ov.cluster.filter((n) => !n.error).map((n) => [n.name, n.requests])),
      ops: new Map(ov.requests.map((o) => [o.op, o.requests])),
    };
  }

  function renderHeader(ov) {
    $('node-name').textContent = ov.node.name;
    $('node-version').textContent = ov.node.version ? 'v' + ov.node.version : '';
    document.title = ov.node.name + ' · starling';
    for (const e of document.querySelectorAll('.this-node')) e.textContent = ov.node.name;
    const ready = $('ready');
    ready.className = 'badge ' + (ov.ready ? 'ready' : 'not-ready');
    ready.textContent = ov.ready ? 'ready' : 'not ready';
    ready.title = ov.ready ? '' : ov.not_ready || '';
    $('updated').textContent = 'updated ' + new Date(ov.time).toLocaleTimeString();
    $('live').className = 'live-dot on';

    const problems = [];
    if (!ov.ready) problems.push('Not ready: ' + (ov.not_ready || 'unknown reason'));
    if (ov.cluster_error) problems.push('Member figures unavailable: ' + ov.cluster_error);
    setBanner(problems.join(' · '), false);
  }

  function renderTiles(ov, nodeRates) {
    const members = ov.node.members;
    const alive = members.filter((m) => m.state === 'alive').length;
    $('t-members').textContent = members.length;
    $('t-members-sub').textContent = alive === members.length ? 'all alive' : alive + ' alive';

    let ops = null;
    for (const r of nodeRates.values()) if (r != null) ops = (ops || 0) + r;
    $('t-ops').textContent = ops == null ? '–' : fmtCompact(ops);

    let entries = 0, used = 0, max = 0;
    for (const n of ov.cluster) { entries += n.entries; used += n.bytes; max += n.max_memory; }
    $('t-keys').textContent = fmtCompact(entries);
    $('t-mem').textContent = fmtBytes(used);
    $('t-mem-sub').textContent = max ? 'of ' + fmtBytes(max) + ' (' + fmtPct(used / max) + ')' : '';

    const v = hexVersion(ov.node.ring.version);
    $('t-ring').textContent = v.slice(0, 8);
    $('t-ring').title = '0x' + v;
    const vn = ov.node.ring.shares.length ? ov.node.ring.shares[0].vnodes : 0;
    $('t-ring-sub').textContent = ov.node.ring.shares.length + ' on ring · ' + vn + ' vnodes each';

    const h = ov.node.gossip_health;
    const ht = $('t-health');
    ht.textContent = h === 0 ? 'healthy' : 'score ' + h;
    ht.className = 'tile-value ' + (h === 0 ? 'good' : 'warn');
  }

  function renderRing(ov, colour, self) {
    const arcs = $('arcs');
    const shares = ov.node.ring.shares;
    const gap = shares.length > 1 ? 1.5 : 0; // SVG units between arcs
    const nodes = [];
    let offset = 0;
    for (const s of shares) {
      const len = Math.max(s.fraction * CIRC - gap, 0.5);
      const c = svgEl('circle', {
        class: 'arc' + (s.name === self ? ' self' : ''),
        cx: 110, cy: 110, r: R,
        stroke: colour.get(s.name),
        'stroke-dasharray': len + ' ' + (CIRC - len),
        'stroke-dashoffset': -offset,
        'data-name': s.name,
      });
      const title = svgEl('title', {});
      title.textContent = s.name + ': ' + fmtPct(s.fraction) + ' of the key space, ' + s.vnodes + ' vnodes';
      c.append(title);
      nodes.push(c);
      offset += s.fraction * CIRC;
    }
    arcs.replaceChildren(...nodes);
    $('ring-count').textContent = shares.length;

    const items = shares.map((s) => {
      const li = el('li', { 'data-name': s.name },
        el('span', { class: 'swatch' }),
        el('span', { text: s.name + (s.name === self ? ' (this node)' : '') }),
        el('span', { class: 'pct', text: fmtPct(s.fraction) }),
        el('span', { class: 'vn', text: s.vnodes + ' vnodes' }));
      li.firstChild.style.background = colour.get(s.name);
      li.addEventListener('mouseenter', () => highlight(s.name));
      li.addEventListener('mouseleave', () => highlight(null));
      return li;
    });
    $('legend').replaceChildren(...items);
  }

  function highlight(name) {
    for (const a of document.querySelectorAll('#arcs .arc')) {
      a.classList.toggle('dim', name != null && a.dataset.name !== name);
    }
  }

  function renderMembers(ov, colour, self, cluster, shares, nodeRates) {
    const rows = ov.node.members.map((m) => {
      const n = cluster.get(m.name);
      const share = shares.get(m.name);
      const sw = el('span', { class: 'swatch' });
      sw.style.background = colour.get(m.name);
      const label = m.http_addr && m.name !== self
        ? el('a', { href: 'http://' + m.http_addr + '/', text: m.name, title: 'Open ' + m.name + "'s status page" })
        : el('span', { text: m.name });
      const name = el('div', { class: 'member-name' }, sw, label,
        m.name === self ? el('span', { class: 'you', text: 'this node' }) : null);

      let ops = '–', mem, entries = '–';
      if (!n) {
        mem = el('span', { class: 'muted', text: '–' });
      } else if (n.error) {
        mem = el('span', { class: 'err-text', text: 'unreachable', title: n.error });
      } else {
        const r = nodeRates.get(m.name);
        ops = r == null ? '–' : fmtCompact(r);
        entries = fmtInt(n.entries);
        mem = memBar(n.bytes, n.max_memory);
      }
      return el('tr', { 'data-name': m.name },
        el('td', {}, name),
        el('td', {}, el('span', { class: 'state ' + stateClass(m.state), text: m.state })),
        el('td', { class: 'num', text: share ? fmtPct(share.fraction) : '–' }),
        el('td', { class: 'num ops', text: ops }),
        el('td', {}, mem),
        el('td', { class: 'num', text: entries }),
        el('td', {}, addresses(m)));
    });
    $('members').tBodies[0].replaceChildren(...rows);
  }

  function addresses(m) {
    const list = el('div', { class: 'addrs' });
    for (const [k, v] of [['data', m.data_addr], ['resp', m.resp_addr], ['gossip', m.gossip_addr], ['http', m.http_addr]]) {
      if (v) list.append(el('span', { class: 'k', text: k }), el('span', { class: 'v', text: v }));
    }
    return list;
  }

  function memBar(used, max) {
    const frac = max > 0 ? Math.min(used / max, 1) : 0;
    const fill = el('div', { class: 'fill' + (frac > 0.95 ? ' full' : frac > 0.8 ? ' high' : '') });
    fill.style.width = (frac * 100).toFixed(1) + '%';
    return el('div', { class: 'mem', title: fmtPct(frac) + ' of the bound' },
      el('div', { class: 'bar' }, fill),
      el('span', { class: 'mem-text', text: fmtBytes(used) + ' / ' + fmtBytes(max) }));
  }

  function renderOps(ov, opRates) {
    const rows = ov.requests.map((o) => {
      const r = opRates.get(o.op);
      return el('tr', {},
        el('td', { class: 'op', text: o.op }),
        el('td', { class: 'num', text: r == null ? '–' : fmtCompact(r) }),
        el('td', { class: 'num', text: fmtInt(o.requests) }),
        el('td', { class: 'num', text: o.requests ? fmtPct(o.forwarded / o.requests) : '–' }),
        el('td', { class: 'num', text: fmtInt(o.not_found) }),
        el('td', { class: 'num' + (o.errors ? ' bad' : ''), text: fmtInt(o.errors) }),
        el('td', { class: 'num', text: fmtMicros(o.mean_us) }),
        el('td', { class: 'num', text: fmtMicros(o.p99_us) }));
    });
    $('ops').tBodies[0].replaceChildren(...rows);
    $('ops-empty').hidden = rows.length > 0;
  }

  function renderStore(ov) {
    const s = ov.node.store, r = ov.node.rebalance;
    const reads = s.hits + s.misses;
    const items = [
      ['section', 'Store'],
      ['Entries', fmtInt(s.entries)],
      ['Tombstones', fmtInt(s.tombstones)],
      ['Memory', fmtBytes(s.bytes) + ' of ' + fmtBytes(s.max_memory)],
      ['Hit ratio', reads ? fmtPct(s.hits / reads) : '–'],
      ['Evictions', fmtInt(s.evictions)],
      ['Expirations', fmtInt(s.expirations)],
      ['Traffic in / out', fmtBytes(ov.bytes_in) + ' / ' + fmtBytes(ov.bytes_out)],
      ['section', 'Replication and rebalancing'],
      ['Copies acknowledged', fmtInt(r.replicated)],
      ['Keys awaiting a replica', fmtInt(r.under_replicated)],
      ['Keys moved', fmtInt(r.keys_moved) + ' (' + fmtBytes(r.bytes_moved) + ')'],
      ['Fallback reads', fmtInt(r.fallback_hits)],
      ['Passes running', fmtInt(r.running)],
      ['Last hand-off', r.last_handoff_ns ? fmtMicros(r.last_handoff_ns / 1000) : '–'],
    ];
    const nodes = [];
    for (const [k, v] of items) {
      if (k === 'section') nodes.push(el('dt', { class: 'section', text: v }));
      else nodes.push(el('dt', { text: k }), el('dd', { text: v }));
    }
    $('store').replaceChildren(...nodes);
  }

  function setBanner(text, bad) {
    const b = $('banner');
    b.hidden = !text;
    b.textContent = text;
    b.className = 'banner' + (bad ? ' bad' : '');
  }

  async function poll() {
    try {
      const res = await fetch('/api/status', { cache: 'no-store' });
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || res.status + ' ' + res.statusText);
      failures = 0;
      render(body);
    } catch (e) {
      failures++;
      $('live').className = 'live-dot off';
      $('updated').textContent = 'update failed, retrying';
      setBanner('Cannot reach the node: ' + e.message, true);
    } finally {
      // Back off gently while the node is unreachable.
      setTimeout(poll, refreshMs * Math.min(1 + failures, 5));
    }
  }

  poll();
})();
