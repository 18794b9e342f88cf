#!/usr/bin/env python3
"""Renders chat templates with Python's jinja2 the way transformers'
apply_chat_template does, writing the expected outputs for tst_chat_template:

  tests/fixtures/chat_templates/<name>.json   each resources/chat_templates/<name>.jinja
                                              on a set of conversations
  tests/fixtures/chat_templates/interpreter.json  small templates, one feature each

Run from the repository root:  python3 scripts/make_template_fixtures.py
"""
import json
import os
from datetime import datetime

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE_DIR = os.path.join(ROOT, "resources", "chat_templates")
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "chat_templates")


class RaisedByTemplate(jinja2.exceptions.TemplateError):
    """What raise_exception() raises (transformers raises a plain TemplateError)."""


def make_env():
    # As transformers.utils.chat_template_utils._compile_jinja_template.
    def raise_exception(message):
        raise RaisedByTemplate(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def sorted_keys(x):
    """Dicts rebuilt in sorted key order: the C++ test reads them with QJsonObject,
    which iterates keys sorted, and dict order is visible (tojson, items())."""
    if isinstance(x, dict):
        return {k: sorted_keys(x[k]) for k in sorted(x)}
    if isinstance(x, list):
        return [sorted_keys(v) for v in x]
    return x


def render(source, context):
    """{"expected": text} or {"error": message, "raised": bool}."""
    try:
        return {"expected": ENV.from_string(source).render(**context)}
    except RaisedByTemplate as e:
        return {"error": str(e), "raised": True}
    except Exception as e:  # TypeError and friends from Python operations
        return {"error": f"{type(e).__name__}: {e}", "raised": False}


def msg(role, content):
    return {"role": role, "content": content}


SPECIAL = ("  h\u00e9llo \u4e16\u754c \U0001F389 \"double\" 'single' \\back\\slash {{ not_a_tag }} {% raw %}"
           " <b>&amp;</b>\n\ttabbed\r\nline  ")

CONVERSATIONS = [
    ("single_user", [msg("user", "Hello!")], True),
    ("system_user", [msg("system", "You are terse."), msg("user", "Hi")], True),
    ("multi_turn", [msg("system", "Be kind."), msg("user", "What is 2+2?"), msg("assistant", "4."),
                    msg("user", "And 3+3?")], True),
    ("assistant_last_no_gen", [msg("user", "Hi"), msg("assistant", "Hello, how can I help?")], False),
    ("assistant_last_gen", [msg("user", "Hi"), msg("assistant", "Hello, how can I help?")], True),
    ("two_users", [msg("user", "one"), msg("user", "two")], True),
    ("assistant_first", [msg("assistant", "I start."), msg("user", "ok")], True),
    ("unicode_special", [msg("system", SPECIAL), msg("user", SPECIAL), msg("assistant", SPECIAL),
                         msg("user", "\u00bfQu\u00e9?")], True),
    ("empty_content", [msg("user", ""), msg("assistant", ""), msg("user", "")], True),
    ("system_only", [msg("system", "Only a system prompt.")], True),
    ("no_messages", [], True),
]

TOKENS = {
    "gemma": ("<bos>", "<eos>"),
    "chatml": ("", "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama2": ("<s>", "</s>"),
    "mistral": ("<s>", "</s>"),
    "phi3": ("<s>", "<|endoftext|>"),
    "zephyr": ("<s>", "</s>"),
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                                        "days": {"type": "integer"}},
                       "required": ["city"]},
    },
}

TOOL_CONVERSATION = [
    msg("user", "Weather in Z\u00fcrich?"),
    {"role": "assistant", "content": "",
     "tool_calls": [{"id": "call12345", "type": "function",
                     "function": {"name": "get_weather", "arguments": {"city": "Z\u00fcrich", "days": 2}}}]},
    {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "{\"temp\": 21.5}"},
]

# Extra cases with variables beyond the public API (tools, tool calls).
TOOL_CASES = {
    "chatml": [("tools", TOOL_CONVERSATION, True, {"tools": [WEATHER_TOOL]}),
               ("tools_with_system", [msg("system", "Use tools.")] + TOOL_CONVERSATION, True,
                {"tools": [WEATHER_TOOL]})],
    "llama3": [("tools_in_user_message", TOOL_CONVERSATION[:1], True, {"tools": [WEATHER_TOOL]}),
               ("tool_call_history", TOOL_CONVERSATION, True, {}),
               ("builtin_tools", [msg("system", "sys"), msg("user", "search it")], True,
                {"builtin_tools": ["brave_search", "code_interpreter"], "tools_in_user_message": False,
                 "tools": [WEATHER_TOOL]})],
    "mistral": [("tools", TOOL_CONVERSATION, True, {"tools": [WEATHER_TOOL]})],
}


def template_fixture(name):
    with open(os.path.join(TEMPLATE_DIR, name + ".jinja"), encoding="utf-8") as f:
        source = f.read()
    bos, eos = TOKENS[name]
    cases = []
    for case_name, messages, gen in CONVERSATIONS:
        context = sorted_keys({"messages": messages, "add_generation_prompt": gen, "bos_token": bos, "eos_token": eos})
        cases.append({"name": case_name, "public_api": True, "context": context, **render(source, context)})
    for case_name, messages, gen, extra in TOOL_CASES.get(name, []):
        context = sorted_keys({"messages": messages, "add_generation_prompt": gen, "bos_token": bos, "eos_token": eos,
                               **extra})
        cases.append({"name": case_name, "public_api": False, "context": context, **render(source, context)})
    return {"template": name, "cases": cases}


DATA = {
    "items": [3, 1, 2],
    "words": ["b", "A", "c", "a"],
    "people": [{"name": "Ann", "age": 31, "tags": ["x"]}, {"name": "bob", "age": 25, "tags": []},
               {"name": "Cy", "age": 40}],
    "d": {"b": 2, "a": 1, "items": "shadow"},
    "s": "  Hello, World  ",
    "empty": [],
    "nested": {"list": [{"k": [1, 2, {"z": None}]}], "flag": True, "num": 2.5},
}

# (name, template, extra context)
INTERPRETER_CASES = [
    ("text_only", "plain text\nsecond line\n", {}),
    ("output_types", "{{ 1 }}|{{ 2.5 }}|{{ 1.0 }}|{{ 1e20 }}|{{ 0.0001 }}|{{ 1e-5 }}|{{ -0.5 }}|{{ true }}|{{ none }}|{{ 'x' }}|{{ [1, 'a', none, true] }}|{{ {'k': 'v', 'n': [1.5]} }}|{{ (1, 'b') }}|{{ (1,) }}", {}),
    ("repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n'] }}", {}),
    ("comments", "a{# comment #}b{#- trimmed -#}   c\n{# own line #}\nd", {}),
    ("whitespace_minus", "a  {{- 'b' -}}  c\n  {%- if true -%}  d  {%- endif -%}  e", {}),
    ("trim_lstrip_blocks", "  {% if true %}\n  x\n  {% endif %}\n  y  {{ 1 }}  {% if true %} z {% endif %}\n  {# c #}\nw\n", {}),
    ("plus_disables_lstrip", "  {%+ if true %}\nx\n  {% endif +%}\ny", {}),
    ("trailing_newline_kept_once", "a\n\n", {}),
    ("raw_block", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}", {}),
    ("for_loop_vars", "{% for x in items %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}:{{ x }};{% endfor %}", {}),
    ("for_prev_next_cycle", "{% for x in items %}[{{ loop.previtem }}|{{ loop.nextitem }}|{{ loop.cycle('o', 'e') }}]{% endfor %}", {}),
    ("for_else", "{% for x in empty %}x{% else %}none{% endfor %}|{% for x in items %}{{ x }}{% else %}none{% endfor %}", {}),
    ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}|{% for k, v in d | items %}{{ k }}{% endfor %}", {}),
    ("for_inline_if", "{% for p in people if p.age > 30 %}{{ p.name }}{{ loop.index }}/{{ loop.length }} {% endfor %}", {}),
    ("for_over_dict_and_string", "{% for k in d %}{{ k }},{% endfor %}|{% for c in 'h\u00e9!' %}[{{ c }}]{% endfor %}", {}),
    ("nested_loops", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("loop_controls", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("scoping", "{% set x = 0 %}{% for i in [1, 2] %}{{ x }},{% set x = x + i %}{{ x }};{% endfor %}{{ x }}|{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(total=0, seen=false) %}{% for i in items %}{% set ns.total = ns.total + i %}{% set ns.seen = true %}{% endfor %}{{ ns.total }} {{ ns.seen }} {{ ns }}", {}),
    ("if_elif_else", "{% for n in [0, 1, 2, 3] %}{% if n == 0 %}zero{% elif n == 1 %}one{% elif n is even %}even{% else %}other{% endif %} {% endfor %}", {}),
    ("set_block_and_tuple", "{% set a, b = 1, 'two' %}{{ a }}{{ b }}|{% set block %}in {{ a }} block{% endset %}[{{ block }}]", {}),
    ("macros", "{% macro greet(name, punct='!', upper=false) %}{{ (name | upper) if upper else name }}{{ punct }}{% endmacro %}{{ greet('ann') }} {{ greet('bo', '?') }} {{ greet(name='cy', upper=true) }} {{ greet('di', punct='.') }}", {}),
    ("macro_sees_globals", "{% macro m() %}{{ z }}-{{ items | length }}{% endmacro %}{% set z = 3 %}{{ m() }}", {}),
    ("arithmetic", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1 + 2.5 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ true + 1 }} {{ -(3) }} {{ 'ab' * 3 }} {{ [1] + [2, 3] }} {{ [0] * 2 }}", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true ~ undefined_thing ~ [1] }} {{ 'x' + 'y' }}", {}),
    ("comparisons", "{{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'abc' < 'abd' }} {{ [1, 2] < [1, 3] }} {{ 2 >= 2 }} {{ none == none }} {{ {'a': 1} == {'a': 1} }} {{ 1 == '1' }}", {}),
    ("logic", "{{ true and 'x' }} {{ false or 'y' }} {{ 0 or '' or 'z' }} {{ not 0 }} {{ not 'a' }} {{ 'a' and 0 }} {{ none or [] }}", {}),
    ("membership", "{{ 'ell' in 'hello' }} {{ 2 in items }} {{ 'a' in d }} {{ 'z' not in d }} {{ 5 not in items }} {{ 'x' in undefined_thing }}", {}),
    ("ternary", "{{ 'yes' if items else 'no' }} {{ 'yes' if empty else 'no' }} [{{ 'only' if false }}] {{ 1 if false else 2 if true else 3 }}", {}),
    ("subscripts_slices", "{{ items[0] }}{{ items[-1] }}{{ items[1:] }}{{ items[:-1] }}{{ items[::-1] }}{{ items[::2] }}{{ items[5:] }} {{ 'h\u00e9llo'[1:3] }} {{ 'hello'[::-1] }} {{ 'hello'[-2] }} [{{ items[10] }}] {{ d['a'] }} {{ d.a }} [{{ d['zz'] }}]", {}),
    ("attribute_vs_item", "{{ d['items'] }} {{ d.items() | list }} {{ nested.list[0].k[2].z }} {{ people.0.name }}", {}),
    ("string_methods", "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ s.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}|{{ ' a  b c '.split(none, 1) }}|{{ 'a-b-c'.rsplit('-', 1) }}|{{ s.startswith('  He') }}|{{ 'file.py'.endswith(('.js', '.py')) }}|{{ 'MiXed'.upper() }}{{ 'MiXed'.lower() }}|{{ \"they're bill's\".title() }}|{{ 'hELLO wORLD'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'h\u00e9llo'.find('l') }}|{{ 'banana'.count('an') }}|{{ ', '.join(['x', 'y']) }}|{{ '{} and {name}'.format(1, name='n') }}|{{ '123'.isdigit() }}", {}),
    ("unicode_strip", "[{{ '\u00a0\u3000 x \u2003\n' | trim }}] [{{ '\u00a0x\u00a0'.strip() }}] {{ '\u4e16\u754c' | length }}", {}),
    ("dict_methods", "{{ d.keys() | list }} {{ d.values() | list }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }}", {}),
    ("filters_text", "{{ s | trim }}|{{ 'xhix' | trim('x') }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'hello wORLD-foo(bar' | title }}|{{ 'hELLO' | capitalize }}|{{ 'aXbX' | replace('X', '-') }}|{{ 'aXbX' | replace('X', '-', 1) }}|{{ '<a href=\"x\">&</a>' | e }}|{{ '<b>' | safe }}|{{ 42 | string }}", {}),
    ("filters_seq", "{{ items | length }} {{ items | count }} {{ items | first }} {{ items | last }} {{ items | join('-') }} {{ items | sort }} {{ words | sort }} {{ words | sort(reverse=true) }} {{ words | sort(case_sensitive=true) }} {{ items | reverse | list }} {{ 'abc' | reverse }} {{ 'ab' | list }} {{ [1, 2, 1, 3] | unique | list }} {{ items | sum }} {{ items | min }} {{ items | max }} {{ words | max }} {{ people | map(attribute='name') | join(',') }} {{ people | sort(attribute='age') | map(attribute='name') | list }} {{ people | join(', ', attribute='name') }}", {}),
    ("filters_select", "{{ items | select('odd') | list }} {{ items | reject('odd') | list }} {{ [0, 1, '', 'a', none] | select | list }} {{ people | selectattr('age', 'gt', 30) | map(attribute='name') | list }} {{ people | rejectattr('tags') | map(attribute='name') | list }} {{ people | selectattr('tags', 'defined') | list | length }} {{ words | select('equalto', 'a') | list }} {{ ['a', 'b'] | map('upper') | list }} {{ items | map('string') | join }}", {}),
    ("filters_default", "[{{ undefined_thing | default('dflt') }}] [{{ '' | default('dflt') }}] [{{ '' | default('dflt', true) }}] [{{ none | d('x') }}] [{{ undefined_thing | length }}] [{{ undefined_thing | trim }}]", {}),
    ("filters_numbers", "{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 3 | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.1 | round(0, 'ceil') }}", {}),
    ("filters_dict", "{{ d | dictsort }} {{ d2 | dictsort(by='value', reverse=true) }} {{ d | items | list }} {{ d | list }} {{ d | length }} {{ people[0] | attr('name') }}", {"d2": {"b": 2, "a": 1, "c": 3}}),
    ("tojson", "{{ nested | tojson }}\n{{ people | tojson(indent=2) }}\n{{ {'s': 'q\"\\\\\\n\\t\\u00e9\\u0001', 'e': {}, 'l': []} | tojson }}\n{{ d | tojson(sort_keys=true) }}\n{{ items | tojson(separators=(',', ':')) }}", {}),
    ("indent_filter", "{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(width='> ', blank=true) }}", {}),
    ("tests", "{{ undefined_thing is defined }} {{ items is defined }} {{ undefined_thing is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is string }} {{ d is mapping }} {{ items is mapping }} {{ items is iterable }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ items is sequence }} {{ d is sequence }} {{ 1 is number }} {{ 2.5 is number }} {{ 'a' is number }} {{ 1 is integer }} {{ 1.5 is float }} {{ true is boolean }} {{ true is true }} {{ 1 is true }} {{ false is false }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 'a' is equalto 'a' }} {{ 2 is eq 3 }} {{ 2 is ne 3 }} {{ 2 is lt 3 }} {{ 2 is gt 3 }} {{ 2 is in items }} {{ range is callable }} {{ 'abc' is lower }} {{ none is sameas none }} {{ items is not none }} {{ not items is none }}", {}),
    ("range_and_globals", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(5, 0, -2) | list }} {{ dict(a=1, b='x') }} {{ strftime_now('%Y') | length }}", {}),
    ("with_and_filter_block", "{% with a = 2, b = 'x' %}{{ a }}{{ b }}{% endwith %}[{{ a }}] {% filter upper %}shout {{ 'it' }}{% endfilter %}", {}),
    ("string_escapes", "{{ 'tab\\there' }}|{{ \"dq \\\"x\\\"\" }}|{{ 'uni \\u00e9 \\x41' }}|{{ 'keep \\d' }}|{{ 'adj' 'acent' }}", {}),
    ("raise_in_loop", "{% for m in people %}{% if m.age < 30 %}{{ raise_exception('too young: ' ~ m.name) }}{% endif %}{{ m.name }}{% endfor %}", {}),
    ("error_undefined_attr", "{{ undefined_thing.x }}", {}),
    ("error_add_undefined", "{{ 'a' + undefined_thing }}", {}),
    ("error_type_compare", "{{ 1 < 'a' }}", {}),
    ("error_iterate_none", "{% for x in none %}{% endfor %}", {}),
    ("error_macro_recursion", "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", {}),
    ("recursive_macro_bounded", "{% macro fact(n) %}{{ 1 if n <= 1 else n * (fact(n - 1) | int) }}{% endmacro %}{{ fact(10) }}", {}),
    ("error_assign_non_namespace", "{% set d2 = {} %}{% set d2.x = 1 %}", {}),
]


# Templates jinja2 rejects at parse time; the fixture records jinja2's line number.
SYNTAX_ERROR_CASES = [
    ("unclosed_if", "line one\n{% if true %}\nno end"),
    ("unclosed_for", "{% for x in items %}\n{{ x }}\n"),
    ("bad_expression", "ok\n\n{{ 1 + }}"),
    ("unterminated_string", "{{ 'abc }}"),
    ("unknown_tag", "a\n{% frobnicate %}"),
    ("stray_endfor", "x\ny\n{% endfor %}"),
    ("unknown_filter", "\n{{ x | no_such_filter }}"),
    ("unknown_test", "{{ x is no_such_test }}"),
    ("unterminated_var", "text {{ x "),
]


def interpreter_fixture():
    cases = []
    for name, source, extra in INTERPRETER_CASES:
        context = sorted_keys(dict(DATA, **extra))
        cases.append({"name": name, "template": source, "context": context, **render(source, context)})
    errors = []
    for name, source in SYNTAX_ERROR_CASES:
        try:
            ENV.from_string(source)
            raise SystemExit(f"{name}: jinja2 accepted the template")
        except jinja2.exceptions.TemplateSyntaxError as e:
            errors.append({"name": name, "template": source, "line": e.lineno, "message": e.message})
    return {"cases": cases, "syntax_errors": errors}


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for file in sorted(os.listdir(TEMPLATE_DIR)):
        if not file.endswith(".jinja"):
            continue
        name = file[: -len(".jinja")]
        with open(os.path.join(OUT_DIR, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(template_fixture(name), f, ensure_ascii=False, indent=1)
            f.write("\n")
    with open(os.path.join(OUT_DIR, "interpreter.json"), "w", encoding="utf-8") as f:
        json.dump(interpreter_fixture(), f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
