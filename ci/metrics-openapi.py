#!/usr/bin/env python3
"""Writes fixtures/openapi/metrics-server-v0.8.0.definitions.json: the OpenAPI definitions
metrics-server publishes for metrics.k8s.io/v1beta1 (NodeMetrics, PodMetrics, their lists,
ContainerMetrics, and meta/v1 Duration, which the Kubernetes spec lacks), converted mechanically from the Go literals of its generated OpenAPI
(pkg/api/generated/openapi/zz_generated.openapi.go) to the swagger 2.0 `definitions` form that
the Kubernetes spec in fixtures/openapi/ uses, for the twin's /openapi documents.

Usage: ci/metrics-openapi.py ZZ_GENERATED_OPENAPI_GO > fixtures/openapi/metrics-server-v0.8.0.definitions.json
(e.g. `git -C METRICS_SERVER_REPO show v0.8.0:pkg/api/generated/openapi/zz_generated.openapi.go`
saved to a file). Only the subset of Go those five functions use is understood; anything else
stops the script with the line it could not read.
"""

import json
import re
import sys

# (generated function, Go type): the metrics types, and meta/v1 Duration (their `window`),
# which the Kubernetes spec itself does not define.
TYPES = [
    ("pkg_apis_metrics_v1beta1_" + t, "k8s.io/metrics/pkg/apis/metrics/v1beta1." + t)
    for t in ["ContainerMetrics", "NodeMetrics", "NodeMetricsList", "PodMetrics", "PodMetricsList"]
] + [("pkg_apis_meta_v1_Duration", "k8s.io/apimachinery/pkg/apis/meta/v1.Duration")]
KINDS = {"NodeMetrics", "NodeMetricsList", "PodMetrics", "PodMetricsList"}
TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+)|(?P<punct>[{}\[\](),:&])|(?P<word>[A-Za-z_][\w.]*))'
)


def openapi_name(go_name):
    """`k8s.io/metrics/pkg/apis/metrics/v1beta1.NodeMetrics` -> `io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics`."""
    path, _, type_name = go_name.rpartition(".")
    host, _, rest = path.partition("/")
    return ".".join(reversed(host.split("."))) + "." + rest.replace("/", ".") + "." + type_name


class Parser:
    def __init__(self, text):
        self.tokens = [(m.lastgroup, m.group(m.lastgroup)) for m in TOKEN.finditer(text)]
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self, value=None):
        kind, text = self.peek()
        if value is not None and text != value:
            raise SystemExit(f"expected {value!r}, found {text!r} (token {self.pos})")
        self.pos += 1
        return kind, text

    def value(self):
        kind, text = self.peek()
        if kind in ("str", "num"):
            self.take()
            return json.loads(text)
        if text == "&":
            self.take()
            return self.value()
        if text == "[":
            # []string{"a", "b"}
            self.take("[")
            self.take("]")
            self.take()
            return self.composite(list_form=True)
        if text == "ref":
            self.take()
            self.take("(")
            _, target = self.take()
            self.take(")")
            return {"$ref": "#/definitions/" + openapi_name(json.loads(target))}
        if text in ("true", "false"):
            self.take()
            return text == "true"
        if text == "map":
            # map[string]interface{}{} (an empty default) or map[string]spec.Schema{...}
            self.take()
            self.take("[")
            self.take()
            self.take("]")
            _, element = self.take()
            if element == "interface":
                self.take("{")
                self.take("}")
            return self.composite(map_form=True)
        if kind == "word":
            self.take()
            if self.peek()[1] == "{":
                return self.composite()
            return text
        if text == "{":
            return self.composite()
        raise SystemExit(f"cannot read {text!r} (token {self.pos})")

    def composite(self, list_form=False, map_form=False):
        self.take("{")
        items = [] if list_form else {}
        while self.peek()[1] != "}":
            if list_form:
                items.append(self.value())
            else:
                key = self.value() if map_form else self.take()[1]
                self.take(":")
                items[key] = self.value()
            if self.peek()[1] == ",":
                self.take(",")
        self.take("}")
        return items


def schema(go):
    """A spec.Schema literal (as parsed) as a swagger schema."""
    props = go.get("SchemaProps", {})
    out = {}
    if props.get("Description"):
        out["description"] = props["Description"]
    if props.get("Type"):
        out["type"] = props["Type"][0]
    if props.get("Format"):
        out["format"] = props["Format"]
    if "Ref" in props:
        out.update(props["Ref"])
    if props.get("Properties"):
        out["properties"] = {k: schema(v) for k, v in props["Properties"].items()}
    if "Items" in props:
        out["items"] = schema(props["Items"]["Schema"])
    if "AdditionalProperties" in props:
        out["additionalProperties"] = schema(props["AdditionalProperties"]["Schema"])
    if props.get("Required"):
        out["required"] = props["Required"]
    if "Default" in props:
        out["default"] = props["Default"]
    return out


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    source = open(sys.argv[1]).read()
    # Duration's schema comes from methods; apimachinery's duration.go returns these.
    source = source.replace("v1.Duration{}.OpenAPISchemaType()", '[]string{"string"}')
    source = source.replace("v1.Duration{}.OpenAPISchemaFormat()", '""')
    definitions = {}
    for function, go_name in TYPES:
        type_name = go_name.rpartition(".")[2]
        match = re.search(
            r"func schema_%s\(ref common\.ReferenceCallback\) common\.OpenAPIDefinition \{\n\treturn (common\.OpenAPIDefinition\{.*?\n\t\})\n\}" % function,
            source,
            re.S,
        )
        if not match:
            raise SystemExit(f"no schema function for {go_name}")
        definition = Parser(match.group(1)).value()
        converted = schema(definition["Schema"])
        if type_name in KINDS:
            converted["x-kubernetes-group-version-kind"] = [
                {"group": "metrics.k8s.io", "kind": type_name, "version": "v1beta1"}
            ]
        definitions[openapi_name(go_name)] = converted
    json.dump({"definitions": definitions}, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
