// simclr inspection report: sortable tables, opening the target of a link,
// and the search box over the serialized elasticlunr index that
// search_index.js assigns to window.SIMCLR_SEARCH.
(function () {
  'use strict';

  // --- sortable tables -------------------------------------------------
  function cellValue(td) {
    if (!td) return '';
    var v = td.getAttribute('data-v');
    return v === null ? td.textContent.trim().toLowerCase() : parseFloat(v);
  }

  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    if (!body) return;
    var asc = !th.classList.contains('asc');
    Array.prototype.forEach.call(th.parentNode.children, function (h) {
      h.classList.remove('asc', 'desc');
    });
    th.classList.add(asc ? 'asc' : 'desc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a.cells[col]), y = cellValue(b.cells[col]);
      var c = x < y ? -1 : x > y ? 1 : 0;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  document.querySelectorAll('table.sortable').forEach(function (table) {
    var head = table.tHead && table.tHead.rows[0];
    if (!head) return;
    Array.prototype.forEach.call(head.cells, function (th, col) {
      th.addEventListener('click', function () { sortBy(table, col, th); });
    });
  });

  // --- links into closed <details> --------------------------------------
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (!id) return;
    var el = document.getElementById(id);
    if (!el) return;
    for (var p = el; p; p = p.parentElement) {
      if (p.tagName === 'DETAILS') p.open = true;
    }
    document.querySelectorAll('.target').forEach(function (t) { t.classList.remove('target'); });
    el.classList.add('target');
    el.scrollIntoView({ block: 'center' });
  }
  window.addEventListener('hashchange', reveal);
  reveal();

  // --- search ------------------------------------------------------------
  // Must tokenize like simclr::inspect::search::tokenize.
  function tokenize(text) {
    var lower = text.toLowerCase();
    var out = [];
    lower.split(/[^\p{L}\p{N}_.]+/u).forEach(function (raw) {
      var t = raw.replace(/^\.+|\.+$/g, '');
      if (!t) return;
      out.push(t);
      if (/[_.]/.test(t)) {
        t.split(/[_.]/).forEach(function (p) { if (p) out.push(p); });
      }
    });
    var whole = lower.trim();
    if (whole.indexOf('/') >= 0 && !/\s/.test(whole)) out.push(whole);
    return out;
  }

  var BOOST = { name: 3, scope: 2, opcode: 1 };
  var MAX_POSTINGS = 50000;
  var MAX_SHOWN = 50;

  function node(root, token) {
    var n = root;
    for (var ch of token) {
      n = n[ch];
      if (!n) return null;
    }
    return n;
  }

  // Every (ref, tf, df, term length) under `n`: the token itself and its
  // expansions (terms it is a prefix of).
  function postings(n, depth, out) {
    var stack = [[n, depth]];
    while (stack.length && out.length < MAX_POSTINGS) {
      var top = stack.pop(), cur = top[0], len = top[1];
      if (cur.docs) {
        for (var ref in cur.docs) out.push([ref, cur.docs[ref].tf, cur.df, len]);
      }
      for (var k in cur) {
        if (k !== 'docs' && k !== 'df') stack.push([cur[k], len + 1]);
      }
    }
    return out;
  }

  function search(data, query) {
    var tokens = tokenize(query);
    if (!tokens.length) return [];
    var idx = data.index;
    var n = data.docs.length || 1;
    var total = null;
    tokens.forEach(function (tok) {
      var scores = {};
      idx.fields.forEach(function (field) {
        var inv = idx.index[field];
        var start = inv && node(inv.root, tok);
        if (!start) return;
        var tokLen = Array.from(tok).length;
        postings(start, tokLen, []).forEach(function (p) {
          var idf = 1 + Math.log(n / (p[2] + 1));
          var weight = tokLen / p[3];
          scores[p[0]] = (scores[p[0]] || 0) + (BOOST[field] || 1) * p[1] * idf * weight;
        });
      });
      if (total === null) {
        total = scores;
      } else {
        var both = {};
        for (var ref in total) if (ref in scores) both[ref] = total[ref] + scores[ref];
        total = both;
      }
    });
    return Object.keys(total || {})
      .map(function (ref) { return [ref, total[ref]]; })
      .sort(function (a, b) { return b[1] - a[1] || a[0] - b[0]; });
  }

  var input = document.getElementById('search');
  var list = document.getElementById('results');
  var status = document.getElementById('search-status');
  if (!input || !list) return;
  var data = window.SIMCLR_SEARCH;
  if (!data || !data.index || !data.docs) {
    if (status) status.textContent = 'search index not loaded (search_index.js)';
    input.disabled = true;
    return;
  }

  function render() {
    var q = input.value;
    list.textContent = '';
    list.setAttribute('data-query', q);
    if (!q.trim()) { status.textContent = ''; return; }
    var hits = search(data, q);
    status.textContent = hits.length + (hits.length === 1 ? ' result' : ' results') +
      (hits.length > MAX_SHOWN ? ', showing ' + MAX_SHOWN : '');
    hits.slice(0, MAX_SHOWN).forEach(function (h) {
      var d = data.docs[+h[0]];
      if (!d) return;
      var li = document.createElement('li');
      li.className = 'result';
      var a = document.createElement('a');
      a.href = d.url;
      a.textContent = d.title;
      var kind = document.createElement('span');
      kind.className = 'kind';
      kind.textContent = d.kind + ' · ' + d.program;
      var detail = document.createElement('span');
      detail.className = 'detail';
      detail.textContent = d.detail;
      li.appendChild(a);
      li.appendChild(kind);
      li.appendChild(detail);
      list.appendChild(li);
    });
  }

  var timer = null;
  input.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(render, 120);
  });
  input.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') { input.value = ''; render(); }
  });
  document.addEventListener('click', function (e) {
    if (e.target.closest && e.target.closest('#results a')) { list.textContent = ''; }
  });
})();
