#!/usr/bin/env python3
"""Validates JSON documents against our schemas in doc/ (stdlib only).

usage: jsonschema.py SCHEMA [FILE...]   (no FILE: one document on stdin)

Knows the part of JSON Schema (2020-12) that doc/*.schema.json use: type,
enum, properties, required, additionalProperties (a boolean), items,
minimum, pattern, and $ref to "#/$defs/NAME", "FILE.json" or
"FILE.json#/$defs/NAME" (relative to the schema's directory). Any other
keyword is refused, so that a schema cannot silently ask for more than is
checked. Prints one line per violation (its JSON path) and exits 1 if any.
"""
import json
import os
import re
import sys

ANNOTATIONS = {"$schema", "title", "description", "$defs"}
KEYWORDS = {"type", "enum", "properties", "required", "additionalProperties",
            "items", "minimum", "pattern", "$ref"} | ANNOTATIONS
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
}

_files = {}


def load(path):
    path = os.path.abspath(path)
    if path not in _files:
        with open(path) as f:
            _files[path] = json.load(f)
    return path, _files[path]


def resolve(ref, base):
    file_part, _, pointer = ref.partition("#")
    path, doc = load(os.path.join(os.path.dirname(base), file_part)) if file_part else (base, _files[base])
    node = doc
    for part in [p for p in pointer.split("/") if p]:
        node = node[part]
    return node, path


def check(value, schema, base, where, errors):
    unknown = set(schema) - KEYWORDS
    if unknown:
        errors.append(f"schema {os.path.basename(base)}: unsupported keywords {sorted(unknown)}")
        return
    if "$ref" in schema:
        target, tbase = resolve(schema["$ref"], base)
        check(value, target, tbase, where, errors)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](value) for t in types):
            errors.append(f"{where}: {json.dumps(value)[:60]} is not of type {'/'.join(types)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {json.dumps(value)} is not one of {schema['enum']}")
    if "minimum" in schema and TYPES["number"](value) and value < schema["minimum"]:
        errors.append(f"{where}: {value} is less than {schema['minimum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {json.dumps(value)} does not match {schema['pattern']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: lacks '{key}'")
        for key, v in value.items():
            if key in props:
                check(v, props[key], base, f"{where}.{key}", errors)
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{where}: unknown key '{key}'")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            check(v, schema["items"], base, f"{where}[{i}]", errors)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    base, schema = load(argv[1])
    docs = [(p, open(p).read()) for p in argv[2:]] or [("stdin", sys.stdin.read())]
    errors = []
    for name, text in docs:
        try:
            value = json.loads(text)
        except ValueError as ex:
            errors.append(f"{name}: not JSON: {ex}")
            continue
        check(value, schema, base, name if len(docs) > 1 else "$", errors)
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
