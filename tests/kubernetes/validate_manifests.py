#!/usr/bin/python3
"""Validates deploy/kubernetes/ offline: no cluster, and no kubeconform (it is not in Debian).

The schema is the one inside Debian's python3-kubernetes: the Kubernetes Python client, whose
model classes are generated from the API's OpenAPI spec (release 1.22 in Debian 12). For every
document of every manifest except kustomization.yaml:
  - apiVersion and kind must name a resource that the API serves;
  - every field must be known to its model and have the model's type (str, int, bool, list,
    map, nested object; int-or-string fields are typed `object` there and take anything);
  - the model's own setters must accept the values (required fields, patterns);
  - no metadata.namespace: the user picks one with -n or an overlay.
The schema cannot see references between documents, so these are checked too: a selector must
match a pod template defined here, and a pod volume must name a ConfigMap or claim defined here.
kustomization.yaml must list exactly the other manifests. Last, the frontdoor config inside the
ConfigMap must pass `frontdoor --check` ($FRONTDOOR_BIN, default build/frontdoor).

Broken copies of the manifests are checked first, each of which must be rejected, so a checker
that stopped finding errors fails too.

    FRONTDOOR_BIN=build/frontdoor /usr/bin/python3 tests/kubernetes/validate_manifests.py

Prints `FILE: doc N (Kind name): path.to.field: problem` per problem and exits 1, or prints a
summary and exits 0. Fields newer than the client's API release would be reported as unknown,
and quantities are typed str there, so `cpu: 1` must be written `cpu: "1"`.
"""

import datetime
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

try:
    import kubernetes
    import kubernetes.client as k8s
except ImportError:
    sys.exit("python3-kubernetes is missing:"
             " apt-get install --no-install-recommends python3-kubernetes")

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
KUSTOMIZATION = "kustomization.yaml"
CONFIG_KEY = "frontdoor.yaml"
CHECK_ENV = {"FRONTDOOR_DOMAIN": "example.com", "ACME_EMAIL": "ops@example.com"}

PRIMITIVES = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    # PyYAML turns unquoted timestamps into datetime objects; the API takes them as strings.
    "datetime": lambda v: isinstance(v, (str, datetime.date)),
    "date": lambda v: isinstance(v, (str, datetime.date)),
}

# Each model is built without validation, then every field is set again with it: the
# constructor would stop at the first missing field, the setters one by one report them all.
LENIENT = k8s.Configuration()
LENIENT.client_side_validation = False
STRICT = k8s.Configuration()
STRICT.client_side_validation = True


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys without a word; kubectl refuses them."""


def _construct_unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def describe(value):
    return "null" if value is None else type(value).__name__


def join(path, key):
    return f"{path}.{key}" if path else str(key)


def resource_model(api_version, kind):
    """The model class of a top-level resource, or None when the API serves no such kind.

    The group's API class (apps/v1 -> AppsV1Api) must be able to create the kind, which ties the
    kind to its group and version; the model class alone (V1Deployment) names only the version.
    """
    group, _, version = api_version.rpartition("/")
    prefix = "".join(part.capitalize() for part in group.removesuffix(".k8s.io").split("."))
    prefix = (prefix or "Core") + version.capitalize()
    api = getattr(k8s, prefix + "Api", None)
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", kind).lower()
    if api is None or not any(hasattr(api, f"create_{scope}{snake}")
                              for scope in ("namespaced_", "")):
        return None
    # A few kinds exist in two groups (Event), and their models carry the group in the name.
    for name in (prefix + kind, version.capitalize() + kind):
        if isinstance(getattr(k8s, name, None), type):
            return getattr(k8s, name)
    return None


def check_value(value, type_name, path, report):
    """Checks |value| against an openapi_types string; returns what the model's setter gets."""
    if type_name == "object":
        return value
    item = re.fullmatch(r"list\[(.+)\]", type_name)
    if item:
        if not isinstance(value, list):
            report(path, f"expected a list, got {describe(value)}")
            return value
        return [check_value(v, item[1], f"{path}[{i}]", report) for i, v in enumerate(value)]
    item = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if item:
        if not isinstance(value, dict):
            report(path, f"expected a mapping, got {describe(value)}")
            return value
        for key in value:
            if not isinstance(key, str):
                report(join(path, key), f"keys must be strings, got {describe(key)}")
        return {k: check_value(v, item[1], join(path, k), report) for k, v in value.items()}
    if type_name in PRIMITIVES:
        if not PRIMITIVES[type_name](value):
            report(path, f"expected {type_name}, got {describe(value)} {value!r}")
        return value
    return check_model(value, getattr(k8s, type_name), path, report)


def check_model(data, model, path, report):
    if not isinstance(data, dict):
        report(path, f"expected a mapping ({model.__name__}), got {describe(data)}")
        return data
    attributes = {key: attr for attr, key in model.attribute_map.items()}
    values = {}
    for key, value in data.items():
        attr = attributes.get(key)
        if attr is None:
            close = difflib.get_close_matches(str(key), attributes, n=1)
            report(join(path, key),
                   "unknown field" + (f" (did you mean {close[0]}?)" if close else ""))
        elif value is not None:  # null is how YAML says "not set", as the API reads it
            values[attr] = check_value(value, model.openapi_types[attr], join(path, key), report)
    instance = model(local_vars_configuration=LENIENT)
    instance.local_vars_configuration = STRICT
    for attr in model.openapi_types:
        try:
            setattr(instance, attr, values.get(attr))
        except ValueError as error:
            report(join(path, model.attribute_map[attr]),
                   str(error) if attr in values else "required field missing")
    return instance


def load_manifests(directory, problems):
    """{file name: [(document number, document)]} for every manifest but the kustomization."""
    manifests = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name == KUSTOMIZATION:
            continue
        try:
            documents = list(yaml.load_all(path.read_text(), Loader=UniqueKeyLoader))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
            problems.append(f"{where}: {getattr(error, 'problem', None) or error}")
            continue
        manifests[path.name] = [(n, d) for n, d in enumerate(documents, 1) if d is not None]
    return manifests


def reporter(file_name, number, document, problems):
    if isinstance(document, dict):
        name = dig(document, "metadata", "name") or "?"
        where = f"{file_name}: doc {number} ({document.get('kind', '?')} {name})"
    else:
        where = f"{file_name}: doc {number}"
    return lambda path, message: problems.append(f"{where}: {path or '(document)'}: {message}")


def check_schema(manifests, problems):
    for file_name, documents in manifests.items():
        for number, document in documents:
            report = reporter(file_name, number, document, problems)
            if not isinstance(document, dict):
                report("", f"expected a mapping, got {describe(document)}")
                continue
            api_version, kind = document.get("apiVersion"), document.get("kind")
            if not isinstance(api_version, str) or not isinstance(kind, str):
                report("", "apiVersion and kind must be strings")
                continue
            model = resource_model(api_version, kind)
            if model is None:
                report("kind", f"{api_version} has no kind {kind}")
                continue
            check_model(document, model, "", report)
            if dig(document, "metadata", "namespace") is not None:
                report("metadata.namespace", "leave it to `kubectl -n` or a kustomize overlay")


def dig(value, *keys):
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def check_references(manifests, problems):
    documents = [(f, n, d) for f, docs in manifests.items() for n, d in docs
                 if isinstance(d, dict)]
    templates = [dig(d, "spec", "template", "metadata", "labels") or {} for _, _, d in documents]
    defined = {(d.get("kind"), dig(d, "metadata", "name")) for _, _, d in documents}

    def matches(selector, labels):
        return isinstance(selector, dict) and selector.items() <= labels.items()

    for file_name, number, document in documents:
        report = reporter(file_name, number, document, problems)
        kind, spec = document.get("kind"), document.get("spec")
        own_labels = dig(spec, "template", "metadata", "labels")
        if own_labels is not None:
            if not matches(dig(spec, "selector", "matchLabels"), own_labels):
                report("spec.selector", "does not match the pod template's labels")
            for i, volume in enumerate(dig(spec, "template", "spec", "volumes") or []):
                for source, key, target in (("configMap", "name", "ConfigMap"),
                                            ("persistentVolumeClaim", "claimName",
                                             "PersistentVolumeClaim")):
                    name = dig(volume, source, key)
                    if name is not None and (target, name) not in defined:
                        report(f"spec.template.spec.volumes[{i}].{source}.{key}",
                               f"no {target} {name!r} in these manifests")
        selector = {"Service": dig(spec, "selector"),
                    "PodDisruptionBudget": dig(spec, "selector", "matchLabels")}.get(kind)
        if selector is not None and not any(matches(selector, t) for t in templates):
            report("spec.selector", "selects no pod template in these manifests")


def check_kustomization(directory, problems):
    path = directory / KUSTOMIZATION
    if not path.exists():
        problems.append(f"{KUSTOMIZATION}: missing")
        return
    files = {p.name for p in directory.glob("*.yaml")} - {KUSTOMIZATION}
    listed = dig(yaml.safe_load(path.read_text()), "resources")
    if not isinstance(listed, list):
        problems.append(f"{KUSTOMIZATION}: resources: expected a list of the manifests")
        return
    for name in sorted(files - set(listed)):
        problems.append(f"{KUSTOMIZATION}: resources: {name} is not listed")
    for name in sorted(set(listed) - files):
        problems.append(f"{KUSTOMIZATION}: resources: {name} is not a manifest here")
    for name in sorted({n for n in listed if listed.count(n) > 1}):
        problems.append(f"{KUSTOMIZATION}: resources: {name} is listed twice")


def check_frontdoor_config(manifests, binary, problems):
    found = [(f, n, d) for f, docs in manifests.items() for n, d in docs
             if isinstance(d, dict) and d.get("kind") == "ConfigMap"
             and isinstance(dig(d, "data", CONFIG_KEY), str)]
    if not found:
        problems.append(f"no ConfigMap holds {CONFIG_KEY}")
        return
    if not os.access(binary, os.X_OK):
        problems.append(f"FRONTDOOR_BIN: {binary} is not an executable; build frontdoor first")
        return
    for file_name, number, document in found:
        report = reporter(file_name, number, document, problems)
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, CONFIG_KEY).write_text(document["data"][CONFIG_KEY])
            # Run beside the file so that its messages name it, not the temporary directory.
            result = subprocess.run([str(binary.absolute()), "--check", "-c", CONFIG_KEY],
                                    cwd=tmp, env={**os.environ, **CHECK_ENV},
                                    capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0 or "configuration OK" not in result.stdout:
            for line in (result.stderr or result.stdout or "no output").splitlines():
                report(f"data.{CONFIG_KEY}", f"frontdoor --check: {line}")


def validate(directory, binary):
    problems = []
    manifests = load_manifests(directory, problems)
    check_schema(manifests, problems)
    check_references(manifests, problems)
    check_kustomization(directory, problems)
    check_frontdoor_config(manifests, binary, problems)
    return problems, sum(len(docs) for docs in manifests.values()), len(manifests)


def edit_documents(directory, file_name, edit):
    path = directory / file_name
    documents = list(yaml.safe_load_all(path.read_text()))
    edit(documents)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def edit_text(directory, file_name, old, new):
    path = directory / file_name
    text = path.read_text()
    if old not in text:
        raise AssertionError(f"{file_name} no longer contains {old!r}; update the self-test")
    path.write_text(text.replace(old, new, 1))


def of_kind(documents, kind):
    return next(d for d in documents if d["kind"] == kind)


def frontdoor_container(documents):
    return of_kind(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def rename_readiness_probe(documents):
    container = frontdoor_container(documents)
    container["readinessProbes"] = container.pop("readinessProbe")


def quote_https_port(documents):
    port = of_kind(documents, "Service")["spec"]["ports"][1]
    port["port"] = str(port["port"])


def drop_container_name(documents):
    del frontdoor_container(documents)["name"]


def move_budget_to_apps(documents):
    of_kind(documents, "PodDisruptionBudget")["apiVersion"] = "apps/v1"


def point_app_service_nowhere(documents):
    of_kind(documents, "Service")["spec"]["selector"] = {"app.kubernetes.io/name": "nothing"}


def unlist_claim(documents):
    documents[0]["resources"].remove("pvc.yaml")


# (what is broken, file, edit of its documents or (old text, new text), what must be reported)
BROKEN_COPIES = [
    ("misspelled field", "deployment.yaml", rename_readiness_probe,
     "readinessProbes: unknown field (did you mean readinessProbe?)"),
    ("string where an int belongs", "service.yaml", quote_https_port,
     "spec.ports[1].port: expected int, got str '443'"),
    ("missing container name", "deployment.yaml", drop_container_name,
     "spec.template.spec.containers[0].name: required field missing"),
    ("kind in the wrong API group", "poddisruptionbudget.yaml", move_budget_to_apps,
     "kind: apps/v1 has no kind PodDisruptionBudget"),
    ("duplicate key", "service.yaml",
     ("  type: LoadBalancer\n", "  type: LoadBalancer\n  type: ClusterIP\n"),
     "duplicate key 'type'"),
    ("selector that matches no pods", "app.yaml", point_app_service_nowhere,
     "(Service app): spec.selector: selects no pod template"),
    ("manifest missing from the kustomization", KUSTOMIZATION, unlist_claim,
     "resources: pvc.yaml is not listed"),
    ("invalid frontdoor config", "configmap.yaml",
     ("    resolve_interval: 5s\n", "    resolve_intervall: 5s\n"),
     'unknown key "resolve_intervall"'),
]


def self_test(binary):
    """Runs the checks on broken copies; returns the problems of the self-test itself."""
    failures = []
    for what, file_name, edit, expected in BROKEN_COPIES:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp, "kubernetes")
            shutil.copytree(MANIFESTS, copy)
            if callable(edit):
                edit_documents(copy, file_name, edit)
            else:
                edit_text(copy, file_name, *edit)
            problems, _, _ = validate(copy, binary)
        caught = [p for p in problems if expected in p]
        if caught:
            print(f"self-test: {what}: rejected: {caught[0]}")
        else:
            failures.append(f"self-test: {what} in {file_name} was not reported as {expected!r};"
                            f" problems: {problems or 'none'}")
    return failures


def main():
    binary = Path(os.environ.get("FRONTDOOR_BIN") or REPO / "build" / "frontdoor")
    failures = self_test(binary)
    problems, documents, files = validate(MANIFESTS, binary)
    for line in failures + problems:
        print(line)
    if failures or problems:
        return 1
    release = re.search(r"release-[\d.]+", STRICT.to_debug_report())
    print(f"deploy/kubernetes: {documents} documents in {files} files valid against the"
          f" Kubernetes {release[0] if release else 'client'} API (python3-kubernetes"
          f" {kubernetes.__version__}), kustomization complete, frontdoor --check OK;"
          f" {len(BROKEN_COPIES)} broken copies rejected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
