#!/usr/bin/env python3
"""Checks that the Grafana dashboard and the Prometheus alerting rules in contrib/ ask only for
what tided exports.

    check-dashboards.py [--self-test] EXPOSITION_FILE DASHBOARD_JSON ALERTS_YML

EXPOSITION_FILE is /metrics as tided renders it (daemon/metrics.c) for a host that shows every
feature: tests/unit/daemon/test_metrics.c writes it (test metrics_exposition/*, with
TIDE_METRICS_EXPOSITION=FILE). Every PromQL expression is parsed (operators by precedence,
functions, aggregations, matchers, ranges, subqueries, offset, @; strings, durations and
keywords are not metrics): the dashboard's panel targets (rows' nested panels too), template
variable queries (label_values, query_result) and annotation queries, and every rule's expr.

In each: every metric must be one the exposition has (or one Prometheus makes: up, scrape_*);
every label matcher must name a label that metric carries (or instance/job, which the scrape
adds) and, for the labels that take a fixed set of values (status, state, verdict), a value the
exposition shows; rate()/irate()/increase()/resets() must take counters and
delta()/idelta()/deriv()/predict_linear() gauges; by/without labels must be on the series they
aggregate, on() labels on both sides, and two sides without on()/ignoring() must carry the same
labels. The labels each expression's result carries are worked out, and a legend's {{label}},
label_values()'s label and an alert's {{ $labels.X }} must be among them. The dashboard's
$variables must be defined and its data sources ${DS_PROMETHEUS}. The rules file must have the
structure Prometheus loads (groups[].rules[] with alert|record, expr, for, keep_firing_for,
labels, annotations; durations well-formed), every alert a severity label and summary and
description annotations.

Prints what it checked; exits 1 naming the panel or rule and the metric or label at fault, 2 on
bad usage or unreadable input. --self-test makes each mistake in MUTATIONS in a copy of the two
files and exits 1 unless every one is caught.
"""

import difflib
import json
import re
import sys

import yaml

# ---- the exposition --------------------------------------------------------------------------

# Labels the scrape adds to every series.
TARGET_LABELS = {"instance", "job"}
# Series Prometheus makes itself for each scrape.
SYNTHETIC = {
    "up": "gauge",
    "scrape_duration_seconds": "gauge",
    "scrape_samples_scraped": "gauge",
    "scrape_samples_post_metric_relabeling": "gauge",
    "scrape_series_added": "gauge",
}
# Labels whose values name things (any value is fine); every other label of tide's takes a
# fixed set of values, which the exposition shows in full.
FREE_LABELS = {"domain", "uuid", "cpu", "instance", "job"}


class Metric:
    def __init__(self, name, mtype):
        self.name = name
        self.type = mtype
        self.labels = set()
        self.values = {}  # label -> set of values seen


def unescape_label_value(s, i, line_no):
    """Reads a quoted label value starting at s[i] == '"'; returns (value, index after it)."""
    out = []
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in '\\"n':
                raise ValueError(f"line {line_no}: bad escape in a label value")
            out.append("\n" if s[i + 1] == "n" else s[i + 1])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise ValueError(f"line {line_no}: unterminated label value")


def parse_exposition(text):
    metrics = {}
    types = {}
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if not m:
            raise ValueError(f"line {line_no}: no metric name: {line!r}")
        name = m.group(0)
        if name not in types:
            raise ValueError(f"line {line_no}: {name} has no # TYPE")
        metric = metrics.setdefault(name, Metric(name, types[name]))
        i = m.end()
        if i < len(line) and line[i] == "{":
            i += 1
            while line[i] != "}":
                lm = re.match(r"[a-zA-Z_][a-zA-Z0-9_]*=", line[i:])
                if not lm:
                    raise ValueError(f"line {line_no}: bad label at {line[i:]!r}")
                label = lm.group(0)[:-1]
                value, i = unescape_label_value(line, i + lm.end(), line_no)
                metric.labels.add(label)
                metric.values.setdefault(label, set()).add(value)
                if line[i] == ",":
                    i += 1
            i += 1
        if not re.match(r" \S+$", line[i:]):
            raise ValueError(f"line {line_no}: bad value in {line!r}")
    for name, mtype in SYNTHETIC.items():
        metrics.setdefault(name, Metric(name, mtype))
    return metrics


# ---- PromQL ----------------------------------------------------------------------------------

AGGREGATIONS = {
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "limitk", "limit_ratio",
}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time",
    "ln", "log10", "log2", "mad_over_time", "max_over_time", "min_over_time", "minute", "month",
    "pi", "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sort_by_label",
    "sort_by_label_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan",
    "tanh", "time", "timestamp", "vector", "year",
}
BINARY_KEYWORDS = {"and", "or", "unless", "atan2"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets"}
GAUGE_FUNCTIONS = {"delta", "idelta", "deriv", "predict_linear", "holt_winters"}

DURATION_RE = r"(?:\d+(?:ms|[smhdwy]))+"
# Grafana's global variables, what they stand for here, and how the dashboard's own are written.
GRAFANA_DURATIONS = {"__rate_interval", "__interval", "__range", "__auto_interval"}
GRAFANA_NUMBERS = {"__range_s", "__range_ms", "__interval_ms", "__rate_interval_ms"}
GRAFANA_BUILTIN = GRAFANA_DURATIONS | GRAFANA_NUMBERS | {
    "__dashboard", "__org", "__user", "__from", "__to", "__timeFilter", "__name"}
VARIABLE_RE = re.compile(r"\$\{([a-zA-Z_]\w*)(?::\w+)?\}|\$([a-zA-Z_]\w*)|\[\[([a-zA-Z_]\w*)(?::\w+)?\]\]")


class PromQLError(Exception):
    pass


TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<var>\$\{[a-zA-Z_]\w*(?::\w+)?\}|\$[a-zA-Z_]\w*|\[\[[a-zA-Z_]\w*(?::\w+)?\]\])
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<duration>""" + DURATION_RE + r""")(?![\w.])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w.])
  | (?P<ident>[a-zA-Z_][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|==|!=|<=|>=|[-+*/%^<>=(){}\[\],:@])
    """,
    re.VERBOSE,
)


def tokenize(expr):
    tokens = []
    i = 0
    while i < len(expr):
        m = TOKEN_RE.match(expr, i)
        if not m:
            raise PromQLError(f"cannot read {expr[i:i + 20]!r}")
        kind = m.lastgroup
        text = m.group(0)
        if kind == "var":
            name = next(g for g in VARIABLE_RE.match(text).groups() if g)
            kind = "duration" if name in GRAFANA_DURATIONS else "number"
            tokens.append((kind, text, name))
        elif kind != "ws":
            tokens.append((kind, text, None))
        i = m.end()
    return tokens


def string_value(tok):
    text = tok[1]
    if text[0] == "`":
        return text[1:-1]
    return re.sub(r"\\(.)", r"\1", text[1:-1])


class Query:
    """What one expression reads and gives: its selectors, the functions over them, the labels
    its result carries, the variables it uses, and what is wrong with its labels."""

    def __init__(self):
        self.selectors = []  # (metric name or None, [(label, op, value)])
        self.typed = []      # (function, metric): rate() & co over a plain range selector
        self.variables = set()
        self.label_problems = []
        self.labels = set()  # the result's labels (None: a scalar)


# Binary operators by precedence (PromQL's, lowest first); ^ is right-associative.
PRECEDENCE = {"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, "<=": 3, "<": 3, ">=": 3, ">": 3,
              "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6}
SET_OPERATORS = {"and", "or", "unless"}
# Aggregations whose first argument is a parameter, and those that keep their series' labels.
PARAMETER_AGGREGATIONS = {"topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio"}
SERIES_AGGREGATIONS = {"topk", "bottomk", "limitk", "limit_ratio"}
SCALAR_FUNCTIONS = {"scalar", "time", "pi"}
DATE_FUNCTIONS = {"day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute",
                  "month", "year"}


class Node:
    """kind: scalar, string, vector or matrix; labels: the label names its series carry."""

    def __init__(self, kind, labels=None, metric=None, equal=None):
        self.kind = kind
        self.labels = set(labels or ())
        self.metric = metric      # a plain selector's metric (for rate() & co and absent())
        self.equal = equal or {}  # its equality matchers (absent() gives those labels)


class Parser:
    def __init__(self, expr, metrics):
        self.toks = tokenize(expr)
        self.i = 0
        self.metrics = metrics
        self.q = Query()
        for m in VARIABLE_RE.finditer(expr):
            self.q.variables.add(next(g for g in m.groups() if g))

    # -- tokens
    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else ("eof", "", None)

    def word(self, k=0):
        """The token's text, keywords lower-cased."""
        kind, text, _ = self.peek(k)
        return text.lower() if kind == "ident" else text

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, text):
        if self.word() != text:
            got = self.peek()[1] or "the end"
            raise PromQLError(f"expected {text!r} before {got!r}")
        return self.take()

    def label_list(self):
        self.expect("(")
        out = []
        while self.word() != ")":
            kind, text, _ = self.take()
            if kind != "ident":
                raise PromQLError(f"expected a label name, not {text!r}")
            out.append(text)
            if self.word() == ",":
                self.take()
            elif self.word() != ")":
                raise PromQLError(f"expected ',' or ')' after label {text}")
        self.take()
        return out

    def problem(self, text):
        self.q.label_problems.append(text)

    # -- expressions
    def parse(self):
        node = self.expr(0)
        if self.peek()[0] != "eof":
            raise PromQLError(f"unexpected {self.peek()[1]!r}")
        self.q.labels = None if node.kind in ("scalar", "string") else node.labels
        return self.q

    def expr(self, min_prec):
        left = self.unary()
        while True:
            op = self.word()
            if op not in PRECEDENCE or (self.peek()[0] == "ident" and op not in ("and", "or", "unless", "atan2")):
                return left
            prec = PRECEDENCE[op]
            if prec < min_prec:
                return left
            self.take()
            if self.word() == "bool":
                self.take()
            on = ignoring = include = None
            group = None
            if self.word() in ("on", "ignoring"):
                which = self.take()[1].lower()
                labels = self.label_list()
                if which == "on":
                    on = labels
                else:
                    ignoring = labels
                if self.word() in ("group_left", "group_right"):
                    group = self.take()[1].lower()
                    include = self.label_list() if self.word() == "(" else []
            right = self.expr(prec if op == "^" else prec + 1)
            left = self.binary(op, left, right, on, ignoring, group, include)

    def binary(self, op, left, right, on, ignoring, group, include):
        if left.kind == "string" or right.kind == "string":
            raise PromQLError(f"a string on one side of {op}")
        if left.kind == "matrix" or right.kind == "matrix":
            raise PromQLError(f"a range vector on one side of {op}")
        if left.kind == "scalar" and right.kind == "scalar":
            if op in SET_OPERATORS:
                raise PromQLError(f"{op} between scalars")
            return Node("scalar")
        if left.kind == "scalar" or right.kind == "scalar":
            if op in SET_OPERATORS:
                raise PromQLError(f"{op} with a scalar")
            return Node("vector", (right if left.kind == "scalar" else left).labels)
        for label in on or []:
            missing = [side for side, n in (("left", left), ("right", right)) if label not in n.labels]
            if missing:
                sides = "both sides" if len(missing) == 2 else f"the {missing[0]} side"
                self.problem(f"on({label}): {sides} of {op} have no label {label!r}")
        for label in include or []:
            other = right if group == "group_left" else left
            if label not in other.labels:
                self.problem(f"{group}({label}): the other side of {op} has no label {label!r}")
        if on is None and ignoring is None and op != "or" and left.labels != right.labels:
            self.problem(f"{op} between series with different labels ({', '.join(sorted(left.labels))} and "
                         f"{', '.join(sorted(right.labels))}) and no on()/ignoring(): nothing would match")
        if op == "or":
            return Node("vector", left.labels | right.labels)
        if op in SET_OPERATORS:
            return Node("vector", left.labels)
        if group == "group_left":
            return Node("vector", left.labels | set(include))
        if group == "group_right":
            return Node("vector", right.labels | set(include))
        if on is not None:
            return Node("vector", set(on))
        return Node("vector", left.labels - set(ignoring or ()))

    def unary(self):
        if self.word() in ("-", "+"):
            self.take()
            node = self.unary()
            if node.kind not in ("scalar", "vector"):
                raise PromQLError("unary minus of a string or range")
            return Node(node.kind, node.labels)
        return self.postfix(self.primary())

    def postfix(self, node):
        while True:
            w = self.word()
            if w == "[":
                self.take()
                kind = self.take()[0]
                if kind not in ("duration", "number"):
                    raise PromQLError("expected a duration in [...]")
                subquery = self.word() == ":"
                if subquery:
                    self.take()
                    if self.peek()[0] in ("duration", "number"):
                        self.take()
                self.expect("]")
                if node.kind != "vector" or (node.metric is None and not subquery):
                    raise PromQLError("a range [...] after something that is not a selector (a subquery needs "
                                      "[range:step])")
                node = Node("matrix", node.labels, None if subquery else node.metric, node.equal)
            elif w == "offset":
                self.take()
                if self.word() == "-":
                    self.take()
                if self.take()[0] != "duration":
                    raise PromQLError("expected a duration after offset")
            elif w == "@":
                self.take()
                if self.word() in ("start", "end"):
                    self.take()
                    self.expect("(")
                    self.expect(")")
                elif self.take()[0] != "number":
                    raise PromQLError("expected a time after @")
            else:
                return node

    def primary(self):
        kind, text, _ = self.peek()
        w = self.word()
        if kind in ("number", "duration"):
            self.take()
            return Node("scalar")
        if kind == "string":
            self.take()
            return Node("string")
        if w == "(":
            self.take()
            node = self.expr(0)
            self.expect(")")
            return Node(node.kind, node.labels, None, node.equal) if node.kind != "matrix" else node
        if w == "{":
            return self.selector(None)
        if kind != "ident":
            raise PromQLError(f"unexpected {text or 'end'!r}")
        if w in ("inf", "nan"):
            self.take()
            return Node("scalar")
        nxt = self.word(1)
        if text in AGGREGATIONS and nxt in ("(", "by", "without"):
            return self.aggregation()
        if nxt == "(":
            if text not in FUNCTIONS:
                raise PromQLError(f"unknown function {text}()")
            return self.call()
        if w in GROUPING or w in BINARY_KEYWORDS or w in ("bool", "offset"):
            raise PromQLError(f"unexpected keyword {text!r}")
        return self.selector(self.take()[1])

    def selector(self, name):
        matchers = []
        if self.word() == "{":
            self.take()
            while self.word() != "}":
                kind, label, _ = self.take()
                if kind != "ident":
                    raise PromQLError(f"expected a label name in {{...}}, not {label!r}")
                op = self.take()[1]
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"label matcher {label} without an operator")
                tok = self.take()
                if tok[0] != "string":
                    raise PromQLError(f"label matcher {label}{op} needs a quoted value")
                matchers.append((label, op, string_value(tok)))
                if self.word() == ",":
                    self.take()
                elif self.word() != "}":
                    raise PromQLError(f"unterminated label matchers after {label}")
            self.take()
        if name is None:
            names = [v for (l, op, v) in matchers if l == "__name__" and op == "="]
            name = names[0] if names else None
        self.q.selectors.append((name, matchers))
        metric = self.metrics.get(name)
        labels = (metric.labels if metric else set()) | TARGET_LABELS
        equal = {l: v for (l, op, v) in matchers if op == "=" and l != "__name__"}
        return Node("vector", labels, name, equal)

    def arguments(self):
        self.expect("(")
        args = []
        while self.word() != ")":
            args.append(self.expr(0))
            if self.word() == ",":
                self.take()
            elif self.word() != ")":
                raise PromQLError(f"expected ',' or ')' in arguments, not {self.peek()[1] or 'the end'!r}")
        self.take()
        return args

    def aggregation(self):
        name = self.take()[1]
        grouping = None
        if self.word() in ("by", "without"):
            grouping = (self.take()[1].lower(), self.label_list())
        start = self.i
        args = self.arguments()
        if self.word() in ("by", "without"):
            if grouping:
                raise PromQLError(f"{name} grouped twice")
            grouping = (self.take()[1].lower(), self.label_list())
        want = 2 if name in PARAMETER_AGGREGATIONS else 1
        if len(args) != want:
            raise PromQLError(f"{name}() takes {want} argument(s), not {len(args)}")
        arg = args[-1]
        if arg.kind != "vector":
            raise PromQLError(f"{name}() of a {arg.kind}: it needs an instant vector")
        made = set()
        if name == "count_values":
            if args[0].kind != "string":
                raise PromQLError("count_values() takes the new label's name first")
            made.add(string_value(self.toks[start + 1]))
        if grouping:
            how, labels = grouping
            for label in labels:
                if label not in arg.labels:
                    self.problem(f"{name} {how} ({label}): the series it aggregates have no label {label!r}")
            out = set(labels) if how == "by" else arg.labels - set(labels)
        else:
            out = set(arg.labels) if name in SERIES_AGGREGATIONS else set()
        return Node("vector", out | made)

    def call(self):
        name = self.take()[1]
        start = self.i
        args = self.arguments()
        strings = [string_value(t) for t in self.toks[start:self.i] if t[0] == "string"]
        vectors = [a for a in args if a.kind in ("vector", "matrix")]
        if name in COUNTER_FUNCTIONS | GAUGE_FUNCTIONS or name.endswith("_over_time") or name == "changes":
            if not args or args[0].kind != "matrix":
                raise PromQLError(f"{name}() needs a range vector, e.g. {name}(metric[5m])")
            if args[0].metric and (name in COUNTER_FUNCTIONS or name in GAUGE_FUNCTIONS):
                self.q.typed.append((name, args[0].metric))
        if name in SCALAR_FUNCTIONS:
            return Node("scalar")
        if name == "vector" or (name in DATE_FUNCTIONS and not args):
            return Node("vector")
        if name in ("absent", "absent_over_time"):
            return Node("vector", set(args[0].equal) if args and args[0].metric else set())
        labels = set(vectors[0].labels) if vectors else set()
        if name in ("label_replace", "label_join"):
            if len(strings) < 3:
                raise PromQLError(f"{name}() takes a vector and string arguments")
            sources = [strings[2]] if name == "label_replace" else strings[2:]
            for src in sources:
                if src and src not in labels:
                    self.problem(f"{name}(): source label {src!r} is not on its series")
            labels.add(strings[0])
        if name == "histogram_quantile":
            labels.discard("le")
        return Node("vector", labels)


def parse_promql(expr, metrics):
    return Parser(expr, metrics).parse()


def is_literal(value):
    return "$" not in value and re.fullmatch(r"[A-Za-z0-9_.-]*", value) is not None


def check_query(where, expr, metrics, used, problems, checked):
    """Checks one expression; returns (the labels its result carries, none for a scalar, None
    when it cannot be read; the variables it uses)."""
    try:
        q = parse_promql(expr, metrics)
    except PromQLError as e:
        problems.append(f"{where}: cannot parse {expr!r}: {e}")
        return None, set()
    names = []
    for name, found in q.selectors:
        if name is None:
            problems.append(f"{where}: a selector without a metric name ({expr!r})")
            continue
        names.append(name)
        metric = metrics.get(name)
        if metric is None:
            close = difflib.get_close_matches(name, list(metrics), n=2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            problems.append(f"{where}: unknown metric {name}{hint}")
            continue
        used.add(name)
        own = metric.labels | TARGET_LABELS
        for label, op, value in found:
            if label == "__name__":
                continue
            if label not in own:
                problems.append(f"{where}: {name} has no label {label!r} (it has: "
                                f"{', '.join(sorted(own))})")
                continue
            if label in FREE_LABELS:
                continue
            seen = metric.values.get(label, set())
            alternatives = [value] if op in ("=", "!=") else (
                value.split("|") if re.fullmatch(r"[A-Za-z0-9_|]+", value) else [])
            for v in alternatives:
                if is_literal(v) and v not in seen:
                    problems.append(f"{where}: {name}{{{label}{op}\"{value}\"}}: tided never exports "
                                    f"{label}=\"{v}\" (it exports: {', '.join(sorted(seen))})")
    for function, name in q.typed:
        metric = metrics.get(name)
        if metric is None:
            continue
        if function in COUNTER_FUNCTIONS and metric.type != "counter":
            problems.append(f"{where}: {function}() of {name}, a {metric.type}: {function}() is for counters")
        if function in GAUGE_FUNCTIONS and metric.type != "gauge":
            problems.append(f"{where}: {function}() of {name}, a {metric.type}: {function}() is for gauges")
    # Label problems only mean something once every metric is known.
    if all(n in metrics for n in names):
        problems.extend(f"{where}: {p}" for p in q.label_problems)
    checked.append((where, sorted(set(names))))
    return (q.labels if q.labels is not None else set()), q.variables


# ---- the dashboard ---------------------------------------------------------------------------

def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def check_dashboard(path, text, metrics, used, problems, checked):
    dash = json.loads(text)
    variables = {}
    templating = dash.get("templating", {}).get("list", [])
    for v in templating:
        variables[v.get("name")] = v
    if not isinstance(dash.get("schemaVersion"), int):
        problems.append(f"{path}: no schemaVersion")
    inputs = {i.get("name") for i in dash.get("__inputs", [])}
    if "DS_PROMETHEUS" not in inputs and "DS_PROMETHEUS" not in variables:
        problems.append(f"{path}: neither an __inputs entry nor a variable DS_PROMETHEUS")
    used_vars = set()

    def datasource_ok(where, ds):
        """Queries go to the data source the importer picks: ${DS_PROMETHEUS}."""
        if ds is None:
            return
        if isinstance(ds, dict) and ds.get("uid") == "${DS_PROMETHEUS}":
            used_vars.add("DS_PROMETHEUS")
            return
        if isinstance(ds, dict) and ds.get("type") == "grafana":  # built-in annotations
            return
        problems.append(f"{where}: datasource {ds!r} is not ${{DS_PROMETHEUS}}")

    # Template variables.
    for v in templating:
        where = f"{path}: variable ${v.get('name')}"
        if v.get("type") != "query":
            continue
        datasource_ok(where, v.get("datasource"))
        query = v.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if not isinstance(query, str) or not query.strip():
            problems.append(f"{where}: no query")
            continue
        query = query.strip()
        m = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)", query, re.S)
        if m:
            labels, uses = check_query(where, m.group(1), metrics, used, problems, checked)
            used_vars.update(uses)
            if labels is not None and m.group(2) not in labels:
                problems.append(f"{where}: label_values(..., {m.group(2)}): no such label on "
                                f"{m.group(1).strip()}")
            continue
        m = re.fullmatch(r"query_result\((.*)\)", query, re.S)
        if m:
            _, uses = check_query(where, m.group(1), metrics, used, problems, checked)
            used_vars.update(uses)
            continue
        m = re.fullmatch(r"label_values\(\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)", query)
        if m:
            if not any(m.group(1) in x.labels for x in metrics.values()) and m.group(1) not in TARGET_LABELS:
                problems.append(f"{where}: label_values({m.group(1)}): no metric has that label")
            checked.append((where, []))
            continue
        problems.append(f"{where}: query {query!r} is not label_values() or query_result()")

    # Annotations.
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            where = f"{path}: annotation {a.get('name')!r}"
            datasource_ok(where, a.get("datasource"))
            _, uses = check_query(where, a["expr"], metrics, used, problems, checked)
            used_vars.update(uses)

    # Panels.
    ids = set()
    n_panels = 0
    for p in walk_panels(dash.get("panels")):
        title = p.get("title", "")
        where = f"{path}: panel {title!r} (id {p.get('id')})"
        if p.get("id") in ids:
            problems.append(f"{where}: id used twice")
        ids.add(p.get("id"))
        if "gridPos" not in p:
            problems.append(f"{where}: no gridPos")
        for m in VARIABLE_RE.finditer(title):
            used_vars.add(next(g for g in m.groups() if g))
        if p.get("repeat"):
            used_vars.add(p["repeat"])
        if p.get("type") == "row":
            continue
        n_panels += 1
        datasource_ok(where, p.get("datasource"))
        targets = p.get("targets", [])
        if p.get("type") not in ("text",) and not targets:
            problems.append(f"{where}: no query")
        for t in targets:
            twhere = f"{where} query {t.get('refId')}"
            datasource_ok(twhere, t.get("datasource"))
            if not t.get("expr"):
                problems.append(f"{twhere}: no expr")
                continue
            labels, uses = check_query(twhere, t["expr"], metrics, used, problems, checked)
            used_vars.update(uses)
            legend = t.get("legendFormat", "")
            for m in VARIABLE_RE.finditer(legend):
                used_vars.add(next(g for g in m.groups() if g))
            for ref in re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend):
                if labels is not None and ref not in labels:
                    problems.append(f"{twhere}: legend {{{{{ref}}}}}: the query's result has no label {ref!r} "
                                    f"(it has: {', '.join(sorted(labels)) or 'none'})")

    for name in sorted(used_vars - set(variables) - GRAFANA_BUILTIN):
        problems.append(f"{path}: ${name} is used but no template variable defines it")
    return n_panels, len(templating)


# ---- the rules -------------------------------------------------------------------------------

DURATION_FULL = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def duration_ok(value):
    return isinstance(value, str) and value != "" and DURATION_FULL.match(value) is not None


def check_rules(path, text, metrics, used, problems, checked):
    doc = yaml.safe_load(text)
    n_rules = 0
    if not isinstance(doc, dict) or set(doc) != {"groups"} or not isinstance(doc["groups"], list) \
            or not doc["groups"]:
        problems.append(f"{path}: expected a mapping with only 'groups', a non-empty list")
        return 0
    group_names = set()
    for gi, g in enumerate(doc["groups"]):
        gwhere = f"{path}: groups[{gi}]"
        if not isinstance(g, dict):
            problems.append(f"{gwhere}: not a mapping")
            continue
        for key in set(g) - {"name", "interval", "rules", "limit", "query_offset", "labels"}:
            problems.append(f"{gwhere}: unknown key {key!r}")
        name = g.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{gwhere}: no name")
        elif name in group_names:
            problems.append(f"{gwhere}: group name {name!r} used twice")
        group_names.add(name)
        gwhere = f"{path}: group {name!r}"
        for key in ("interval", "query_offset"):
            if key in g and not duration_ok(g[key]):
                problems.append(f"{gwhere}: {key} {g[key]!r} is not a duration")
        rules = g.get("rules")
        if not isinstance(rules, list) or not rules:
            problems.append(f"{gwhere}: rules must be a non-empty list")
            continue
        for ri, r in enumerate(rules):
            rwhere = f"{gwhere} rules[{ri}]"
            if not isinstance(r, dict):
                problems.append(f"{rwhere}: not a mapping")
                continue
            n_rules += 1
            for key in set(r) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}:
                problems.append(f"{rwhere}: unknown key {key!r}")
            if ("alert" in r) == ("record" in r):
                problems.append(f"{rwhere}: needs exactly one of alert and record")
                continue
            if "alert" in r:
                rwhere = f"{gwhere} alert {r['alert']!r}"
                if not isinstance(r["alert"], str) or not LABEL_NAME.match(r["alert"]):
                    problems.append(f"{rwhere}: alert name must be a word (letters, digits, _)")
            else:
                rwhere = f"{gwhere} record {r['record']!r}"
                if not isinstance(r["record"], str) or not METRIC_NAME.match(r["record"]):
                    problems.append(f"{rwhere}: record is not a metric name")
                for key in ("for", "keep_firing_for", "annotations"):
                    if key in r:
                        problems.append(f"{rwhere}: a recording rule has no {key}")
            for key in ("for", "keep_firing_for"):
                if key in r and not duration_ok(r[key]):
                    problems.append(f"{rwhere}: {key} {r[key]!r} is not a duration (e.g. 5m, 1h30m)")
            expr = r.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{rwhere}: no expr")
                continue
            labels, uses = check_query(rwhere, expr, metrics, used, problems, checked)
            if labels is not None and isinstance(r.get("labels"), dict):
                # An alert's labels: its series', the rule's own, and alertname.
                labels = labels | set(r["labels"]) | {"alertname"}
            for var in sorted(uses):
                problems.append(f"{rwhere}: ${var} in expr: Prometheus has no template variables")
            for key in ("labels", "annotations"):
                value = r.get(key, {})
                if not isinstance(value, dict):
                    problems.append(f"{rwhere}: {key} must be a mapping")
                    continue
                for k, v in value.items():
                    if not isinstance(k, str) or not LABEL_NAME.match(k):
                        problems.append(f"{rwhere}: {key} name {k!r} is not a label name")
                    if not isinstance(v, str):
                        problems.append(f"{rwhere}: {key}.{k} must be a string")
                        continue
                    if v.count("{{") != v.count("}}"):
                        problems.append(f"{rwhere}: {key}.{k}: unbalanced {{{{ }}}}")
                    for ref in re.findall(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)", v):
                        if labels is not None and ref not in labels:
                            problems.append(f"{rwhere}: {key}.{k} uses $labels.{ref}, which the alert does not "
                                            f"carry (it has: {', '.join(sorted(labels))})")
            if "alert" in r:
                if "severity" not in r.get("labels", {}):
                    problems.append(f"{rwhere}: no severity label")
                for a in ("summary", "description"):
                    if not r.get("annotations", {}).get(a):
                        problems.append(f"{rwhere}: no {a} annotation")
    return n_rules


def check(metrics, dashboard, dashboard_text, rules, rules_text):
    used, problems, checked = set(), [], []
    n_panels, n_vars = check_dashboard(dashboard, dashboard_text, metrics, used, problems, checked)
    n_dash = len(checked)
    n_rules = check_rules(rules, rules_text, metrics, used, problems, checked)
    return used, problems, checked, (n_panels, n_vars, n_dash, n_rules)


# Mistakes the check must catch: (file, text in it, replaced by, what the failure must say).
MUTATIONS = [
    ("dashboard", "tide_domain_assigned_bytes{", "tide_domain_asigned_bytes{", "unknown metric tide_domain_asigned_bytes"),
    ("dashboard", 'status=\\"warning\\"', 'status=\\"warn\\"', 'never exports status="warn"'),
    ("dashboard", 'domain=~\\"$vm\\"', 'vm=~\\"$vm\\"', "has no label 'vm'"),
    ("dashboard", '=~\\"$vm\\"', '=~\\"$vms\\"', "$vms is used but no template variable defines it"),
    ("dashboard", "sum by (instance, domain) (rate(", "sum by (instance, domian) (rate(", "no label 'domian'"),
    ("dashboard", "rate(tide_domain_balloon_actions_total", "rate(tide_domain_assigned_bytes", "is for counters"),
    ("dashboard", '"legendFormat": "{{domain}} ({{instance}})"', '"legendFormat": "{{vm}} ({{instance}})"',
     "legend {{vm}}"),
    ("dashboard", "label_values(tide_ticks_total, instance)", "label_values(tide_ticks_total, host)",
     "no such label"),
    ("dashboard", "(tide_host_short{", "((tide_host_short{", "cannot parse"),
    ("rules", "tide_domain_balloon_state{", "tide_balloon_state{", "unknown metric tide_balloon_state"),
    ("rules", "for: 5m", "for: 5 minutes", "is not a duration"),
    ("rules", "$labels.domain", "$labels.vm", "$labels.vm"),
    ("rules", 'state="uncooperative"', 'state="uncooperativ"', 'never exports state="uncooperativ"'),
    ("rules", "description:", "details:", "no description annotation"),
    ("rules", "severity: critical", "sev: critical", "no severity label"),
    ("rules", "    rules:", "    rulez:", "unknown key 'rulez'"),
    ("rules", 'up{job="tide"} == 0', 'up{job="tide"} == on (domain) tide_host_short', "no label 'domain'"),
    ("rules", "increase(tide_domain_agent_rejected_total", "increase(tide_domain_agent_state",
     "is for counters"),
]


def self_test(metrics, dashboard, dashboard_text, rules, rules_text):
    """Makes each mistake in MUTATIONS and fails unless the check names it."""
    _, problems, _, _ = check(metrics, dashboard, dashboard_text, rules, rules_text)
    if problems:
        print("self-test: the files as they are fail already:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    missed = 0
    for which, old, new, expected in MUTATIONS:
        d, r = dashboard_text, rules_text
        if which == "dashboard":
            if old not in d:
                print(f"self-test: {dashboard} has no {old!r} any more: update MUTATIONS", file=sys.stderr)
                return 1
            d = d.replace(old, new)
        else:
            if old not in r:
                print(f"self-test: {rules} has no {old!r} any more: update MUTATIONS", file=sys.stderr)
                return 1
            r = r.replace(old, new)
        _, problems, _, _ = check(metrics, dashboard, d, rules, r)
        hit = [p for p in problems if expected in p]
        if hit:
            print(f"caught: {old!r} -> {new!r}: {hit[0]}")
        else:
            missed += 1
            print(f"MISSED: {old!r} -> {new!r}: expected {expected!r}, got: {problems}", file=sys.stderr)
    if missed:
        return 1
    print(f"self-test OK: all {len(MUTATIONS)} mistakes caught")
    return 0


def main(argv):
    args = argv[1:]
    selftest = bool(args) and args[0] == "--self-test"
    if selftest:
        args = args[1:]
    if len(args) != 3:
        print("usage: check-dashboards.py [--self-test] EXPOSITION_FILE DASHBOARD_JSON ALERTS_YML", file=sys.stderr)
        return 2
    exposition, dashboard, rules = args
    try:
        with open(exposition, encoding="utf-8") as f:
            metrics = parse_exposition(f.read())
        with open(dashboard, encoding="utf-8") as f:
            dashboard_text = f.read()
        with open(rules, encoding="utf-8") as f:
            rules_text = f.read()
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tide = sorted(m for m in metrics if m not in SYNTHETIC)
    if not tide:
        print(f"{exposition}: no tide metric in it", file=sys.stderr)
        return 2
    try:
        if selftest:
            return self_test(metrics, dashboard, dashboard_text, rules, rules_text)
        used, problems, checked, (n_panels, n_vars, n_dash, n_rules) = check(
            metrics, dashboard, dashboard_text, rules, rules_text)
    except (ValueError, yaml.YAMLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    print(f"{exposition}: {len(tide)} metrics tided exports:")
    for name in tide:
        m = metrics[name]
        values = "; ".join(f"{l}: {'|'.join(sorted(m.values[l]))}" for l in sorted(m.labels - FREE_LABELS))
        print(f"  {name} ({m.type}) {{{','.join(sorted(m.labels))}}}" + (f" [{values}]" if values else ""))
    print("\nqueries checked:")
    for where, names in checked:
        print(f"  {where}: {', '.join(names) if names else '(no metric)'}")
    unused = [m for m in tide if m not in used]
    print(f"\n{n_dash} dashboard queries ({n_panels} panels, {n_vars} variables), "
          f"{len(checked) - n_dash} rule expressions ({n_rules} rules); "
          f"{len(tide) - len(unused)} of {len(tide)} tide metrics used")
    if unused:
        print(f"not used anywhere: {', '.join(unused)}")
    if problems:
        print(f"\nFAIL: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
