// citygrid dispatch board: tasks live over Server-Sent Events (/stream/tasks), the road ranking
// (/kpi/roads, every 30 s) and a schematic map of the registry's roads (/roads). Plain browser
// JavaScript, no framework and nothing loaded from elsewhere. Every value from the server is put
// on the page as text (textContent), never as markup.
'use strict';

(() => {
  const STATUSES = ['registered', 'dispatched', 'accepted', 'handled', 'closed', 'suspended', 'cancelled'];
  const OPEN = new Set(['registered', 'dispatched', 'accepted', 'handled', 'suspended']);
  const DOMAINS = ['fire', 'environment', 'sanitation', 'citymgmt'];
  const PRIORITIES = ['P1', 'P2', 'P3', 'P4'];
  const FILTERS = ['community', 'road', 'domain', 'status', 'priority'];
  const COLUMN_LIMIT = 150;
  const KPI_REFRESH_MS = 30000;
  const FRESH_MS = 2500;
  const TIME_ZONE = 'Asia/Shanghai';
  const TOKEN_KEY = 'citygrid.token';
  const LANG_KEY = 'citygrid.lang';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // The board's own labels, and names of statuses, domains and sources for when the shared
  // translation table (/i18n.json, schemas/data/i18n.json) is missing; when it is there, its names
  // replace these. Category names come from /categories (the category table).
  const TEXT = {
    'zh-CN': {
      title: '九龙街道城市综合执法 · 派遣看板',
      langSwitch: 'English',
      community: '社区', road: '道路', domain: '条线', status: '状态', priority: '优先级',
      all: '全部', clear: '清除筛选', map: '道路示意图（在办任务）', ranking: '道路排名与红旗',
      rank: '名次', score: '得分', dueShort: '应办', overdueShort: '超期',
      open: '在办', overdue: '超期', rebound: '返', reboundLong: '反弹', reboundOf: '反弹自',
      rework: '返工', unassigned: '待派遣', created: '立案', due: '时限', close: '关闭',
      more: '另有 {n} 件', none: '暂无任务', gridCell: '网格',
      connecting: '连接中…', live: '实时', reconnecting: '重新连接…', failed: '连接失败',
      unauthorized: '令牌缺失或错误：请用 /?token=… 打开看板',
      loadingRanking: '正在加载排名…',
      rankingNote: '近 {days} 天 · {time} 更新 · 前 {flags} 名且有应办任务的道路获红旗',
      redFlag: '红旗', notFound: '未找到该任务', openTasks: '在办 {n} 件',
      fields: {
        task_id: '任务编号', status: '状态', priority: '优先级', category: '类别', domain: '条线',
        road_id: '道路', community: '社区', place: '位置', assignee: '处置人', created_at: '立案时间',
        dispatched_at: '派遣时间', due_at: '处置时限', handled_at: '反馈时间', closed_at: '结案时间',
        overdue: '超期', rework_count: '返工次数', rebound_of: '反弹自', sources: '来源',
        event_ids: '上报事件', cancel_reason: '作废原因',
      },
      yes: '是', no: '否',
      statuses: {
        registered: '立案', dispatched: '派遣', accepted: '处置中', handled: '反馈待核查',
        closed: '核查结案', suspended: '挂账', cancelled: '作废',
      },
      domains: { fire: '消防', environment: '环保', sanitation: '环卫', citymgmt: '城市管理' },
      sources: { terminal: '执法终端', sensor: '传感器', camera: '摄像头', drone: '无人机', hotline: '12345热线' },
      priorities: {},
    },
    en: {
      title: 'Jiulong integrated enforcement · dispatch board',
      langSwitch: '中文',
      community: 'Community', road: 'Road', domain: 'Domain', status: 'Status', priority: 'Priority',
      all: 'All', clear: 'Clear filters', map: 'Road map (open tasks)', ranking: 'Road ranking and red flags',
      rank: '#', score: 'Score', dueShort: 'Due', overdueShort: 'Late',
      open: 'Open', overdue: 'Overdue', rebound: 'Rebound', reboundLong: 'Rebounds', reboundOf: 'Rebound of',
      rework: 'Rework', unassigned: 'Awaiting dispatch', created: 'Reported', due: 'Due', close: 'Close',
      more: '{n} more', none: 'No tasks', gridCell: 'Grid cell',
      connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', failed: 'Connection failed',
      unauthorized: 'Missing or wrong token: open the board as /?token=…',
      loadingRanking: 'Loading the ranking…',
      rankingNote: 'Last {days} days · updated {time} · red flags to the top {flags} roads with tasks due',
      redFlag: 'Red flag', notFound: 'No such task', openTasks: '{n} open',
      fields: {
        task_id: 'Task id', status: 'Status', priority: 'Priority', category: 'Category', domain: 'Domain',
        road_id: 'Road', community: 'Community', place: 'Place', assignee: 'Assignee', created_at: 'Reported',
        dispatched_at: 'Dispatched', due_at: 'Due', handled_at: 'Handled', closed_at: 'Closed',
        overdue: 'Overdue', rework_count: 'Reworks', rebound_of: 'Rebound of', sources: 'Sources',
        event_ids: 'Reports', cancel_reason: 'Cancel reason',
      },
      yes: 'yes', no: 'no',
      statuses: {
        registered: 'Registered', dispatched: 'Dispatched', accepted: 'Accepted', handled: 'Handled',
        closed: 'Closed', suspended: 'Suspended', cancelled: 'Cancelled',
      },
      domains: { fire: 'Fire', environment: 'Environment', sanitation: 'Sanitation', citymgmt: 'City management' },
      sources: { terminal: 'Terminal', sensor: 'Sensor', camera: 'Camera', drone: 'Drone', hotline: '12345 hotline' },
      priorities: {},
    },
  };

  const state = {
    lang: 'zh-CN',
    token: null,
    tasks: new Map(),
    fresh: new Map(),
    roads: [],
    roadById: new Map(),
    categories: new Map(),
    kpi: null,
    filters: {},
    conn: 'connecting',
    everLive: false,
  };

  const $ = (selector) => document.querySelector(selector);

  function t(key, values) {
    const text = TEXT[state.lang][key] ?? TEXT['zh-CN'][key] ?? key;
    return values ? text.replace(/\{(\w+)\}/g, (_, name) => String(values[name])) : text;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    return node;
  }

  // --- names ------------------------------------------------------------------------------------

  function splitName(name) {
    // Registry names read "宇龙街 (Yulong St)".
    const match = /^(.*?)\s*\((.+)\)\s*$/.exec(name || '');
    return match ? { zh: match[1], en: match[2] } : { zh: name || '', en: name || '' };
  }

  function roadName(roadId) {
    const road = state.roadById.get(roadId);
    if (!road) return roadId || '';
    const names = splitName(road.name);
    return state.lang === 'en' ? names.en : names.zh;
  }

  function categoryName(code) {
    const category = state.categories.get(code);
    if (!category) return code;
    return state.lang === 'en' ? category.name_en : category.name_zh;
  }

  function statusName(status) { return TEXT[state.lang].statuses[status] || status; }
  function domainName(domain) { return TEXT[state.lang].domains[domain] || domain; }

  function placeName(task) {
    if (task.road_id) return roadName(task.road_id);
    return `${t('gridCell')} ${task.place}`;
  }

  function formatTime(iso) {
    if (!iso) return '—';
    const format = new Intl.DateTimeFormat(state.lang === 'en' ? 'en-GB' : 'zh-CN', {
      timeZone: TIME_ZONE, month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false,
    });
    return format.format(new Date(iso));
  }

  // --- token, language, filters -----------------------------------------------------------------

  function takeToken() {
    // The token arrives once as ?token=; it is kept for this tab and taken out of the address bar.
    const url = new URL(window.location.href);
    const given = url.searchParams.get('token');
    if (given !== null) {
      try { window.sessionStorage.setItem(TOKEN_KEY, given); } catch (_) { /* storage off: memory only */ }
      url.searchParams.delete('token');
      window.history.replaceState(null, '', url.pathname + url.search + url.hash);
      return given || null;
    }
    try { return window.sessionStorage.getItem(TOKEN_KEY); } catch (_) { return null; }
  }

  function chooseLanguage() {
    const asked = new URL(window.location.href).searchParams.get('lang');
    let stored = null;
    try { stored = window.localStorage.getItem(LANG_KEY); } catch (_) { /* no storage */ }
    const lang = asked || stored || 'zh-CN';
    return lang.toLowerCase().startsWith('en') ? 'en' : 'zh-CN';
  }

  function readFilters() {
    const params = new URL(window.location.href).searchParams;
    const filters = {};
    for (const name of FILTERS) filters[name] = params.get(name) || '';
    return filters;
  }

  function filterQuery() {
    const query = new URLSearchParams();
    for (const name of FILTERS) if (state.filters[name]) query.set(name, state.filters[name]);
    return query;
  }

  function writeFilters() {
    const url = new URL(window.location.href);
    for (const name of FILTERS) {
      if (state.filters[name]) url.searchParams.set(name, state.filters[name]);
      else url.searchParams.delete(name);
    }
    window.history.replaceState(null, '', url.pathname + url.search + url.hash);
  }

  // --- the server -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const response = await fetch(path, { headers, cache: 'no-store' });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
    return body;
  }

  function showAlert(message) {
    const alert = $('#alert');
    alert.textContent = message;
    alert.hidden = !message;
  }

  function setConn(conn) {
    state.conn = conn;
    $('#conn').dataset.state = conn;
    $('#conn-text').textContent = t(conn);
    if (conn === 'unauthorized') showAlert(t('unauthorized'));
  }

  async function load(path, apply, retryMs) {
    // Retried every retryMs (when given) while the worker is still loading (503) or unreachable.
    try {
      apply(await api(path));
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) { setConn('unauthorized'); return; }
      if (error instanceof ApiError && error.status === 400) { showAlert(error.message); return; }
      if (retryMs) window.setTimeout(() => load(path, apply, retryMs), retryMs);
    }
  }

  let source = null;
  let retryTimer = null;

  function connect() {
    if (source) source.close();
    window.clearTimeout(retryTimer);
    const query = filterQuery();
    if (state.token) query.set('token', state.token); // EventSource cannot send headers
    const events = new EventSource(`stream/tasks?${query}`);
    source = events;
    let snapshot = null; // the tasks of a (re)connection, swapped in whole once it is complete
    setConn(state.everLive ? 'reconnecting' : 'connecting');
    events.addEventListener('open', () => { snapshot = new Map(); });
    events.addEventListener('task', (event) => {
      const task = JSON.parse(event.data);
      if (snapshot) {
        snapshot.set(task.task_id, task);
        return;
      }
      state.tasks.set(task.task_id, task);
      state.fresh.set(task.task_id, Date.now());
      schedule();
    });
    events.addEventListener('gone', (event) => {
      const { task_id: taskId } = JSON.parse(event.data);
      (snapshot || state.tasks).delete(taskId);
      schedule();
    });
    events.addEventListener('ready', () => {
      if (snapshot) {
        if (state.everLive) {
          for (const [id, task] of snapshot) {
            const before = state.tasks.get(id);
            if (!before || before.updated_at !== task.updated_at) state.fresh.set(id, Date.now());
          }
        }
        state.tasks = snapshot;
        snapshot = null;
      }
      state.everLive = true;
      setConn('live');
      showAlert('');
      schedule();
    });
    events.addEventListener('error', () => {
      if (events !== source) return;
      if (events.readyState !== EventSource.CLOSED) {
        setConn('reconnecting'); // the browser retries by itself
        return;
      }
      // Refused (401, 400) or the worker is gone: ask the JSON API why, then try again.
      diagnose().then((retry) => {
        if (retry && events === source) retryTimer = window.setTimeout(connect, 5000);
      });
    });
  }

  async function diagnose() {
    const query = filterQuery();
    query.set('limit', '1');
    try {
      await api(`tasks?${query}`);
      setConn('reconnecting');
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) { setConn('unauthorized'); return false; }
      if (error instanceof ApiError && error.status === 400) { setConn('failed'); showAlert(error.message); return false; }
      setConn('reconnecting');
      return true;
    }
  }

  // --- rendering --------------------------------------------------------------------------------

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    window.setTimeout(() => { pending = false; render(); }, 150);
  }

  function byUrgency(a, b) {
    return a.priority.localeCompare(b.priority)
      || a.created_at.localeCompare(b.created_at)
      || a.task_id.localeCompare(b.task_id);
  }

  function byRecency(a, b) {
    return b.updated_at.localeCompare(a.updated_at) || a.task_id.localeCompare(b.task_id);
  }

  function isLate(task) {
    return OPEN.has(task.status) && task.status !== 'handled' && task.status !== 'suspended'
      && Date.parse(task.due_at) < Date.now();
  }

  function badge(className, text, title) {
    const node = el('span', `badge ${className}`, text);
    if (title) node.title = title;
    return node;
  }

  function card(task, now) {
    const node = el('article', `card ${task.priority}`);
    node.dataset.taskId = task.task_id;
    node.dataset.road = task.road_id || '';
    node.dataset.status = task.status;
    if (task.overdue) node.classList.add('overdue');
    const changed = state.fresh.get(task.task_id);
    if (changed && now - changed < FRESH_MS) node.classList.add('fresh');

    const head = el('div', 'head');
    head.append(el('span', `prio ${task.priority}`, task.priority));
    const what = el('span', 'what', categoryName(task.category));
    what.title = `${task.category} · ${domainName(task.domain)}`;
    head.append(what);
    if (task.overdue) head.append(badge('overdue', t('overdue')));
    if (task.rework_count > 0) head.append(badge('rework', `${t('rework')}${task.rework_count}`));
    if (task.rebound_of) {
      const link = el('a', 'badge rebound', t('rebound'));
      link.href = `#task=${encodeURIComponent(task.rebound_of)}`;
      link.title = `${t('reboundOf')} ${task.rebound_of}`;
      link.dataset.reboundOf = task.rebound_of;
      link.addEventListener('click', (event) => event.stopPropagation());
      head.append(link);
    }
    node.append(head);

    const where = [placeName(task), task.community].filter(Boolean).join(' · ');
    node.append(el('div', 'where', where));
    node.append(el('div', 'who', task.assignee || t('unassigned')));
    node.append(el('div', 'when', `${t('created')} ${formatTime(task.created_at)}`));
    node.append(el('div', isLate(task) ? 'when late' : 'when', `${t('due')} ${formatTime(task.due_at)}`));
    node.addEventListener('click', () => { window.location.hash = `task=${encodeURIComponent(task.task_id)}`; });
    return node;
  }

  function renderBoard(tasks, now) {
    const chosen = state.filters.status ? state.filters.status.split(',') : STATUSES;
    const columns = [];
    for (const status of STATUSES.filter((s) => chosen.includes(s))) {
      const list = tasks.filter((task) => task.status === status);
      list.sort(OPEN.has(status) ? byUrgency : byRecency);
      const column = el('section', 'column');
      column.dataset.status = status;
      const title = el('h2', null, statusName(status));
      title.append(el('span', 'count', list.length));
      column.append(title);
      for (const task of list.slice(0, COLUMN_LIMIT)) column.append(card(task, now));
      if (list.length > COLUMN_LIMIT) column.append(el('p', 'more', t('more', { n: list.length - COLUMN_LIMIT })));
      if (!list.length) column.append(el('p', 'empty', t('none')));
      columns.push(column);
    }
    const board = $('#board');
    board.style.gridTemplateColumns = `repeat(${columns.length}, minmax(120px, 1fr))`;
    board.replaceChildren(...columns);
  }

  function renderSummary(tasks) {
    const open = tasks.filter((task) => OPEN.has(task.status));
    const items = [
      ['open', t('open'), open.length],
      ['late', t('overdue'), open.filter((task) => task.overdue).length],
      ['rebound', t('reboundLong'), tasks.filter((task) => task.rebound_of).length],
      ['p1', 'P1', open.filter((task) => task.priority === 'P1').length],
    ];
    $('#summary').replaceChildren(...items.map(([className, label, count]) => {
      const item = el('span', className, label);
      item.append(el('b', null, count));
      return item;
    }));
  }

  function flaggedRoads() {
    return new Set((state.kpi?.roads || []).filter((road) => road.red_flag).map((road) => road.road_id));
  }

  function renderMap(tasks) {
    const map = $('#map');
    const roads = state.roads.filter((road) => !state.filters.community || road.community === state.filters.community);
    const points = roads.flatMap((road) => road.segments.flat());
    if (!points.length) { map.replaceChildren(); return; }
    const lons = points.map((p) => p[0]);
    const lats = points.map((p) => p[1]);
    const [minLon, maxLon, minLat, maxLat] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
    const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    const width = 360;
    const pad = 22;
    const spanX = Math.max((maxLon - minLon) * kx, 1e-6);
    const spanY = Math.max(maxLat - minLat, 1e-6);
    const scale = Math.min((width - 2 * pad) / spanX, (320 - 2 * pad) / spanY);
    const height = Math.round(spanY * scale + 2 * pad);
    const x = (lon) => (pad + (lon - minLon) * kx * scale).toFixed(1);
    const y = (lat) => (pad + (maxLat - lat) * scale).toFixed(1);
    map.setAttribute('viewBox', `0 0 ${width} ${height}`);

    const open = new Map();
    for (const task of tasks) {
      if (!task.road_id || !OPEN.has(task.status)) continue;
      const seen = open.get(task.road_id) || { count: 0, priority: 'P4' };
      seen.count += 1;
      if (task.priority < seen.priority) seen.priority = task.priority;
      open.set(task.road_id, seen);
    }
    const flags = flaggedRoads();
    const lines = [];
    const labels = [];
    for (const road of roads) {
      const hot = open.get(road.road_id);
      for (const segment of road.segments) {
        const path = svg('path', { d: segment.map((p, i) => `${i ? 'L' : 'M'}${x(p[0])} ${y(p[1])}`).join(' ') });
        path.classList.add('road');
        if (hot) {
          path.classList.add('hot', hot.priority);
          path.style.strokeWidth = String(3 + Math.min(hot.count, 5));
        }
        if (road.road_id === state.filters.road) path.classList.add('chosen');
        path.dataset.road = road.road_id;
        const title = svg('title');
        title.textContent = `${roadName(road.road_id)} · ${road.community}${hot ? ` · ${t('openTasks', { n: hot.count })}` : ''}`;
        path.append(title);
        path.addEventListener('click', () => chooseFilter('road', state.filters.road === road.road_id ? '' : road.road_id));
        lines.push(path);
      }
      const segment = road.segments[0];
      const middle = segment[Math.floor(segment.length / 2)];
      const label = svg('text', { x: x(middle[0]), y: Number(y(middle[1])) - 4, 'text-anchor': 'middle' });
      label.textContent = `${flags.has(road.road_id) ? '⚑ ' : ''}${roadName(road.road_id)}${hot ? ` ${hot.count}` : ''}`;
      if (hot) label.classList.add('hot');
      if (flags.has(road.road_id)) label.classList.add('flag');
      labels.push(label);
    }
    // Roads with open tasks on top of the quiet ones, labels on top of all.
    lines.sort((a, b) => Number(a.classList.contains('hot')) - Number(b.classList.contains('hot')));
    map.replaceChildren(...lines, ...labels);

    const legend = $('#map-legend');
    legend.replaceChildren(...PRIORITIES.map((p) => {
      const item = el('span', null, p);
      const swatch = el('i', `prio ${p}`);
      item.prepend(swatch);
      return item;
    }), el('span', 'flag', `⚑ ${t('redFlag')}`));
  }

  function renderRanking() {
    const body = $('#ranking tbody');
    const note = $('#ranking-note');
    if (!state.kpi) {
      body.replaceChildren();
      note.textContent = t('loadingRanking');
      return;
    }
    const rows = state.kpi.roads
      .filter((road) => !state.filters.community || road.community === state.filters.community)
      .map((road) => {
        const row = el('tr', road.red_flag ? 'flagged' : '');
        row.dataset.road = road.road_id;
        row.append(el('td', 'num', road.rank));
        const name = el('td', null, roadName(road.road_id));
        if (road.red_flag) {
          const flag = el('span', 'flag', '⚑');
          flag.title = t('redFlag');
          name.append(flag);
        }
        if (road.community) name.append(el('div', 'community', road.community));
        row.append(name);
        row.append(el('td', 'num', road.score.toFixed(1)));
        row.append(el('td', 'num', road.window.due));
        row.append(el('td', 'num', road.window.overdue));
        row.addEventListener('click', () => chooseFilter('road', road.road_id));
        return row;
      });
    body.replaceChildren(...rows);
    const days = Math.round((Date.parse(state.kpi.as_of) - Date.parse(state.kpi.window_start)) / 86400000);
    note.textContent = t('rankingNote', { days, time: formatTime(state.kpi.as_of), flags: state.kpi.red_flags });
  }

  function render() {
    const now = Date.now();
    const tasks = [...state.tasks.values()];
    for (const [id, at] of state.fresh) if (now - at > FRESH_MS) state.fresh.delete(id);
    renderBoard(tasks, now);
    renderSummary(tasks);
    renderMap(tasks);
    renderRanking();
  }

  // --- controls ---------------------------------------------------------------------------------

  function fillSelect(name, options) {
    const select = document.querySelector(`#filters select[name="${name}"]`);
    const all = el('option', null, t('all'));
    all.value = '';
    const nodes = [all, ...options.map(([value, label]) => {
      const option = el('option', null, label);
      option.value = value;
      return option;
    })];
    // A value from the URL the options do not hold yet (registry still loading) is kept.
    const current = state.filters[name];
    if (current && !options.some(([value]) => value === current)) {
      const kept = el('option', null, current);
      kept.value = current;
      nodes.push(kept);
    }
    select.replaceChildren(...nodes);
    select.value = current || '';
  }

  function fillFilters() {
    const communities = [...new Set(state.roads.map((road) => road.community))].sort();
    fillSelect('community', communities.map((c) => [c, c]));
    const roads = state.roads.filter((road) => !state.filters.community || road.community === state.filters.community);
    fillSelect('road', roads.map((road) => [road.road_id, roadName(road.road_id)]));
    fillSelect('domain', DOMAINS.map((d) => [d, domainName(d)]));
    fillSelect('status', STATUSES.map((s) => [s, statusName(s)]));
    fillSelect('priority', PRIORITIES.map((p) => [p, TEXT[state.lang].priorities[p] || p]));
  }

  function chooseFilter(name, value) {
    state.filters[name] = value;
    if (name === 'community' && value) {
      const road = state.roadById.get(state.filters.road);
      if (road && road.community !== value) state.filters.road = '';
    }
    writeFilters();
    fillFilters();
    state.tasks = new Map();
    render();
    connect();
  }

  function applyLanguage() {
    document.documentElement.lang = state.lang;
    document.title = t('title');
    for (const node of document.querySelectorAll('[data-text]')) node.textContent = t(node.dataset.text);
    const switcher = $('#lang');
    switcher.textContent = t('langSwitch');
    switcher.lang = state.lang === 'en' ? 'zh-CN' : 'en';
    $('#conn-text').textContent = t(state.conn);
    $('#map').setAttribute('aria-label', t('map'));
    fillFilters();
    render();
  }

  function detailValue(name, value) {
    if (value === null || value === undefined || value === '') return '—';
    switch (name) {
      case 'status': return statusName(value);
      case 'domain': return domainName(value);
      case 'category': return `${value} ${categoryName(value)}`;
      case 'road_id': return `${roadName(value)} (${value})`;
      case 'overdue': return value ? t('yes') : t('no');
      case 'sources': return value.map((s) => TEXT[state.lang].sources[s] || s).join('、');
      case 'event_ids': return `${value.length}: ${value.join(', ')}`;
      default:
        return name.endsWith('_at') ? formatTime(value) : String(value);
    }
  }

  async function showDetail(taskId) {
    const dialog = $('#detail');
    const body = $('#detail-body');
    $('#detail-title').textContent = taskId;
    let task = state.tasks.get(taskId);
    try {
      task = await api(`tasks/${encodeURIComponent(taskId)}`);
    } catch (error) {
      if (!task) {
        body.replaceChildren(el('dd', null, error.status === 404 ? t('notFound') : error.message));
        if (!dialog.open) dialog.showModal();
        return;
      }
    }
    $('#detail-title').textContent = `${task.priority} · ${categoryName(task.category)} · ${placeName(task)}`;
    const rows = [];
    for (const [name, label] of Object.entries(TEXT[state.lang].fields)) {
      rows.push(el('dt', null, label));
      const cell = el('dd', null, detailValue(name, task[name]));
      if (name === 'rebound_of' && task.rebound_of) {
        cell.replaceChildren();
        const link = el('a', null, task.rebound_of);
        link.href = `#task=${encodeURIComponent(task.rebound_of)}`;
        link.dataset.reboundOf = task.rebound_of;
        cell.append(link);
      }
      rows.push(cell);
    }
    body.replaceChildren(...rows);
    if (!dialog.open) dialog.showModal();
  }

  function followHash() {
    const match = /^#task=(.+)$/.exec(window.location.hash);
    if (match) showDetail(decodeURIComponent(match[1]));
  }

  function start() {
    state.token = takeToken();
    state.lang = chooseLanguage();
    state.filters = readFilters();

    $('#lang').addEventListener('click', () => {
      state.lang = state.lang === 'en' ? 'zh-CN' : 'en';
      try { window.localStorage.setItem(LANG_KEY, state.lang); } catch (_) { /* no storage */ }
      applyLanguage();
    });
    const form = $('#filters');
    form.addEventListener('change', (event) => chooseFilter(event.target.name, event.target.value));
    form.addEventListener('reset', (event) => {
      event.preventDefault();
      for (const name of FILTERS) state.filters[name] = '';
      chooseFilter('community', '');
    });
    $('#detail').addEventListener('close', () => {
      if (window.location.hash.startsWith('#task=')) {
        window.history.replaceState(null, '', window.location.pathname + window.location.search);
      }
    });
    window.addEventListener('hashchange', followHash);

    applyLanguage();
    load('i18n.json', (table) => {
      const kinds = { status: 'statuses', domain: 'domains', source: 'sources', priority: 'priorities' };
      for (const [lang, text] of Object.entries(TEXT)) {
        for (const [kind, names] of Object.entries(kinds)) {
          for (const [value, byLang] of Object.entries(table[kind] || {})) {
            if (byLang[lang]) text[names][value] = byLang[lang];
          }
        }
      }
      applyLanguage();
    }, null);
    load('categories', (body) => {
      state.categories = new Map(body.categories.map((c) => [c.code, c]));
      applyLanguage();
    }, 3000);
    load('roads', (body) => {
      state.roads = body.roads;
      state.roadById = new Map(body.roads.map((road) => [road.road_id, road]));
      applyLanguage();
    }, 3000);
    const applyKpi = (body) => { state.kpi = body; render(); };
    load('kpi/roads', applyKpi, 5000);
    window.setInterval(() => load('kpi/roads', applyKpi, null), KPI_REFRESH_MS);
    window.setInterval(render, 30000); // deadlines pass while nothing else changes
    connect();
    followHash();
  }

  start();
})();
