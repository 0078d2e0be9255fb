#!/usr/bin/env python3
"""Checks a page DOM dumped by headless Chromium (`--dump-dom`) against the API's own answer.

Usage: check_dom.py answer DOM.html ANSWER.json   -- the page asked a question and shows the answer
       check_dom.py error  DOM.html [TEXT]          -- the page shows its error box (containing TEXT)
       check_dom.py feedback DOM.html               -- feedback was stored and the edited SQL's rows shown

Standard library only. Exit status 0 when every check passes; the failures are printed.
"""
import json
import sys
from html.parser import HTMLParser


class Dom(HTMLParser):
    """Collects what the checks need: body state, the SQL text, the result table, the error box."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.state = None
        self.stack = []  # (tag, id, hidden) of open elements
        self.sql = []
        self.error = []
        self.error_hidden = None
        self.result_panel_hidden = None
        self.in_result = False
        self.section = None  # "thead" / "tbody" inside #result
        self.headers = []
        self.rows = []
        self.cell = None
        self.badges = []
        self.feedback = None  # body data-feedback
        self.feedback_status = []
        self.edit_error = []
        self.edit_error_hidden = None
        self.edit_rows = []
        self.edit_cell = None

    def _inside(self, elem_id):
        return any(i == elem_id for (_, i, _) in self.stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.state = a.get("data-state")
            self.feedback = a.get("data-feedback")
        if a.get("id") == "edit-error":
            self.edit_error_hidden = "hidden" in a
        if a.get("id") == "error":
            self.error_hidden = "hidden" in a
        if a.get("id") == "result-panel":
            self.result_panel_hidden = "hidden" in a
        void = tag in ("br", "img", "input", "meta", "link", "hr", "col", "wbr", "area", "source")
        if not void:
            self.stack.append((tag, a.get("id"), "hidden" in a))
        if self._inside("result"):
            if tag in ("thead", "tbody"):
                self.section = tag
            elif tag == "tr" and self.section == "tbody":
                self.rows.append([])
            elif tag in ("th", "td"):
                self.cell = []
        if self._inside("edit-table"):
            if tag == "tr" and any(t == "tbody" for (t, _, _) in self.stack):
                self.edit_rows.append([])
            elif tag == "td":
                self.edit_cell = []

    def handle_endtag(self, tag):
        if self._inside("result") and tag in ("th", "td") and self.cell is not None:
            text = "".join(self.cell).strip()
            if tag == "th" and self.section == "thead":
                self.headers.append(text)
            elif self.section == "tbody" and self.rows:
                self.rows[-1].append(text)
            self.cell = None
        if tag == "td" and self.edit_cell is not None:
            if self.edit_rows:
                self.edit_rows[-1].append("".join(self.edit_cell).strip())
            self.edit_cell = None
        # Pop to the matching open tag (the dumped DOM is well formed).
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if self._inside("sql"):
            self.sql.append(data)
        if self._inside("error"):
            self.error.append(data)
        if self.cell is not None:
            self.cell.append(data)
        if self._inside("badges"):
            self.badges.append(data)
        if self._inside("feedback-status"):
            self.feedback_status.append(data)
        if self._inside("edit-error"):
            self.edit_error.append(data)
        if self.edit_cell is not None:
            self.edit_cell.append(data)


def parse(path):
    d = Dom()
    with open(path, encoding="utf-8") as f:
        d.feed(f.read())
    return d


def cell_text(v):
    """How the page writes one JSON value in a table cell."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # JavaScript prints 3.0 as 3
    if isinstance(v, dict) and isinstance(v.get("blob_hex"), str):
        return f"<blob {len(v['blob_hex']) // 2} bytes>"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def check_answer(dom_path, answer_path):
    d = parse(dom_path)
    with open(answer_path, encoding="utf-8") as f:
        ans = json.load(f)
    failures = []
    if d.state != "done":
        failures.append(f"body data-state is {d.state!r}, not 'done' (error box: {''.join(d.error).strip()!r})")
    sql = "".join(d.sql)
    if not sql.strip():
        failures.append("the SQL box is empty")
    elif sql != ans.get("sql", ""):
        failures.append(f"the page's SQL {sql!r} differs from the API's {ans.get('sql')!r}")
    if ans.get("columns"):
        if d.result_panel_hidden:
            failures.append("the result panel is hidden")
        if not d.headers:
            failures.append("the result table has no header row")
        if d.headers != [str(c) for c in ans["columns"]]:
            failures.append(f"table header {d.headers} differs from the API's columns {ans['columns']}")
        if not d.rows or not d.rows[0]:
            failures.append("the result table has no data row")
        want_rows = [[cell_text(v) for v in r] for r in ans.get("rows", [])]
        if want_rows and d.rows != want_rows:
            failures.append(f"table rows {d.rows[:3]}... differ from the API's {want_rows[:3]}...")
    else:
        failures.append(f"the API's answer has no columns (error: {ans.get('error')!r}); the page test needs a question that executes")
    if d.error_hidden is False:
        failures.append(f"the error box is visible: {''.join(d.error).strip()!r}")
    badges = " ".join(d.badges)
    if ans.get("valid") and "valid" not in badges:
        failures.append("no 'valid' badge")
    return failures, f"SQL {sql!r}; header {d.headers}; {len(d.rows)} data row(s)"


def check_error(dom_path, text=None):
    d = parse(dom_path)
    failures = []
    msg = "".join(d.error).strip()
    if d.state != "error":
        failures.append(f"body data-state is {d.state!r}, not 'error'")
    if d.error_hidden is not False:
        failures.append("the error box is hidden or missing")
    if not msg:
        failures.append("the error box is empty")
    if text and text.lower() not in msg.lower():
        failures.append(f"the error box {msg!r} does not mention {text!r}")
    return failures, f"error box: {msg!r}"


def check_feedback(dom_path):
    d = parse(dom_path)
    failures = []
    status = "".join(d.feedback_status).strip()
    if d.state != "done":
        failures.append(f"body data-state is {d.state!r}, not 'done' (error box: {''.join(d.error).strip()!r})")
    if d.feedback != "stored":
        failures.append(f"body data-feedback is {d.feedback!r}, not 'stored' (status: {status!r})")
    if "stored" not in status.lower():
        failures.append(f"the feedback status {status!r} does not say it was stored")
    if d.edit_error_hidden is not True:
        failures.append(f"the edit box shows an error: {''.join(d.edit_error).strip()!r}")
    if not d.edit_rows or not d.edit_rows[0]:
        failures.append("the edited SQL's result table has no data row")
    return failures, f"feedback status {status!r}; edited result {d.edit_rows[:3]}"


def main(argv):
    if len(argv) >= 3 and argv[1] == "answer" and len(argv) == 4:
        failures, summary = check_answer(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "feedback":
        failures, summary = check_feedback(argv[2])
    elif len(argv) in (3, 4) and argv[1] == "error":
        failures, summary = check_error(argv[2], argv[3] if len(argv) == 4 else None)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for f in failures:
        print(f"FAIL: {f}")
    print(("ok: " if not failures else "seen: ") + summary)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
