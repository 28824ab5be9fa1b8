"""Chart tests on the real helm: `helm lint` and `helm template` on the chart with every values file (and every
invalid one must fail), parse and check the rendered manifests, validate values against values.schema.json, lint
the YAML, and start the built server with the environment the chart renders.

Needs: helm 4.1.4 at .tools/helm/helm (charts/tests/get-helm.sh puts it there; HELM names another), python3-yaml,
python3-jsonschema, yamllint. VIDEOMATCH_SERVER_DLL (set by test.sh) enables the live-server check.
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(ROOT, "charts", "videomatch")
VALUES = sorted(glob.glob(os.path.join(HERE, "values", "*.yaml")))
INVALID = sorted(glob.glob(os.path.join(HERE, "invalid", "*.yaml")))
HELM = os.environ.get("HELM") or os.path.join(ROOT, ".tools", "helm", "helm")
HELM_ENV = None


def setUpModule():
    global HELM_ENV
    if not os.access(HELM, os.X_OK):
        raise RuntimeError(f"no helm at {HELM}: run charts/tests/get-helm.sh (or set HELM)")
    # helm's cache, config and data in a folder of their own: nothing from the user's helm setup leaks in.
    home = tempfile.mkdtemp(prefix="videomatch-helm-")
    HELM_ENV = dict(os.environ, HELM_CACHE_HOME=os.path.join(home, "cache"), HELM_CONFIG_HOME=os.path.join(home, "config"),
                    HELM_DATA_HOME=os.path.join(home, "data"), KUBECONFIG=os.path.join(home, "kubeconfig"))


def tearDownModule():
    shutil.rmtree(os.path.dirname(HELM_ENV["HELM_CACHE_HOME"]), ignore_errors=True)


def helm(*args):
    """Runs helm; returns (exit code, stdout, stderr)."""
    done = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60, env=HELM_ENV)
    return done.returncode, done.stdout, done.stderr


def render(*args, values=None, notes=False):
    """Renders the chart as release vm in namespace vision (its NOTES with notes=True); returns (exit code, stdout, stderr)."""
    options = ["--namespace", "vision"]
    for f in values or []:
        options += ["-f", f]
    for s in args:
        options += ["--set", s]
    if not notes:
        return helm("template", "vm", CHART, *options)
    code, out, err = helm("install", "vm", CHART, "--dry-run=client", *options)
    return code, out.split("NOTES:\n", 1)[-1] if code == 0 else out, err


def manifests(*args, values=None):
    code, out, err = render(*args, values=values)
    if code != 0:
        raise AssertionError(f"render failed: {err}")
    docs = [d for d in yaml.safe_load_all(out) if d]
    return docs, out


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def server_container(docs):
    return one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


class DefaultValues(unittest.TestCase):
    def setUp(self):
        self.docs, self.text = manifests()
        self.container = server_container(self.docs)

    def test_renders_the_expected_objects_only(self):
        kinds = sorted(d["kind"] for d in self.docs)
        self.assertEqual(["Deployment", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"], kinds)
        for doc in self.docs:
            self.assertTrue(doc["metadata"]["name"].startswith("vm-videomatch"), doc["metadata"]["name"])
            self.assertEqual("vm", doc["metadata"]["labels"]["app.kubernetes.io/instance"])

    def test_default_is_the_cpu_demo_and_asks_for_no_gpu(self):
        pod = one(self.docs, "Deployment")["spec"]["template"]["spec"]
        self.assertNotIn("nvidia.com/gpu", self.container["resources"].get("limits", {}))
        self.assertNotIn("tolerations", pod)
        self.assertEqual("cpu", env_of(self.container)["Inference__ExecutionProvider"])
        self.assertEqual("videomatch-server:0.1.0-cpu", self.container["image"])

    def test_probes_use_grpc_health_with_a_startup_budget_for_model_load(self):
        c = self.container
        self.assertEqual({"port": 50051, "service": "liveness"}, c["livenessProbe"]["grpc"])
        self.assertEqual({"port": 50051, "service": ""}, c["readinessProbe"]["grpc"])
        self.assertEqual({"port": 50051, "service": "liveness"}, c["startupProbe"]["grpc"])
        budget = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
        self.assertGreaterEqual(budget, 300)

    def test_ports_line_up_between_container_services_and_settings(self):
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.assertEqual({"grpc": 50051, "metrics": 9464}, ports)
        env = env_of(self.container)
        self.assertEqual("http://+:50051", env["Urls"])
        self.assertEqual("http://+:9464", env["Metrics__Url"])
        main = one(self.docs, "Service", "vm-videomatch")
        self.assertEqual({("grpc", 50051, "grpc"), ("metrics", 9464, "metrics")},
                         {(p["name"], p["port"], p["targetPort"]) for p in main["spec"]["ports"]})
        headless = one(self.docs, "Service", "vm-videomatch-headless")
        self.assertEqual("None", headless["spec"]["clusterIP"])
        deployment = one(self.docs, "Deployment")
        for service in (main, headless):
            self.assertEqual(deployment["spec"]["selector"]["matchLabels"], service["spec"]["selector"])
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        for key, value in deployment["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(value, pod_labels[key])

    def test_runs_as_non_root_with_a_read_only_root(self):
        pod = one(self.docs, "Deployment")["spec"]["template"]["spec"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(0, pod["securityContext"]["runAsUser"])
        self.assertTrue(self.container["securityContext"]["readOnlyRootFilesystem"])
        self.assertFalse(self.container["securityContext"]["allowPrivilegeEscalation"])
        self.assertIn({"name": "tmp", "mountPath": "/tmp"}, self.container["volumeMounts"])

    def test_every_setting_in_the_environment_is_one_the_server_binds(self):
        known = server_settings()
        for name in env_of(self.container):
            if name in ("Urls",) or name.startswith("Logging__"):
                continue
            parts = name.split("__")
            # Models__NAME__Key: one model of several, any name.
            section, key = (parts[0], parts[2]) if parts[0] == "Models" else parts[:2]
            self.assertIn(key, known.get(section, set()), f"{name}: the server has no setting {section}:{key}")

    def test_notes_render_with_the_balancing_advice(self):
        code, out, err = render(notes=True)
        self.assertEqual(0, code, err)
        self.assertIn("dns:///vm-videomatch-headless.vision:50051", out)
        self.assertIn("port-forward svc/vm-videomatch 50051:50051 9464:9464", out)


class ValueSets(unittest.TestCase):
    def test_cpu_pod_has_no_gpu_and_runs_the_cpu_provider(self):
        docs, _ = manifests(values=[os.path.join(HERE, "values", "cpu.yaml")])
        c = server_container(docs)
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        self.assertNotIn("nvidia.com/gpu", c["resources"].get("limits", {}))
        self.assertNotIn("tolerations", pod)
        self.assertEqual("cpu", env_of(c)["Inference__ExecutionProvider"])
        self.assertTrue(c["image"].endswith(":0.1.0-cpu"))

    def test_gpu_pod_with_an_exported_model_asks_for_one_gpu_and_tolerates_gpu_nodes(self):
        docs, _ = manifests(values=[os.path.join(HERE, "values", "gpu-pvc-tls.yaml")])
        c = server_container(docs)
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        self.assertEqual(1, c["resources"]["limits"]["nvidia.com/gpu"])
        self.assertIn({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, pod["tolerations"])
        self.assertEqual("cuda", env_of(c)["Inference__ExecutionProvider"])
        self.assertEqual("/models/matchanything-eloftr", env_of(c)["Inference__ModelPath"])
        self.assertTrue(c["image"].endswith(":0.1.0-gpu"), c["image"])

    def test_extra_models_are_mounted_read_only_and_named_in_the_environment(self):
        docs, _ = manifests(values=[os.path.join(HERE, "values", "gpu-pvc-tls.yaml")])
        c = server_container(docs)
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        env = env_of(c)
        self.assertEqual("/models/extra/tracking", env["Models__tracking__Path"])
        self.assertEqual("fp32", env["Models__tracking__Precision"])
        self.assertEqual("tracking", env["Inference__DefaultModel"])
        self.assertIn({"name": "extra-model-0", "mountPath": "/models/extra/tracking", "readOnly": True, "subPath": "xfeat-lighterglue"}, c["volumeMounts"])
        self.assertIn({"name": "extra-model-0", "persistentVolumeClaim": {"claimName": "videomatch-models", "readOnly": True}}, pod["volumes"])
        known = server_settings()
        for name in env:
            if name.startswith("Models__"):
                self.assertIn(name.split("__")[2], known["Models"], name)

    def test_tls_switches_probes_to_http_and_mounts_the_secret(self):
        docs, _ = manifests(values=[os.path.join(HERE, "values", "gpu-pvc-tls.yaml")])
        c = server_container(docs)
        env = env_of(c)
        self.assertEqual("https://+:50051", env["Urls"])
        for probe, path in (("livenessProbe", "/healthz/live"), ("readinessProbe", "/healthz/ready"), ("startupProbe", "/healthz/live")):
            self.assertEqual({"path": path, "port": "metrics"}, c[probe]["httpGet"])
        self.assertEqual("/etc/videomatch/tls/ca.crt", env["Security__ClientCertificateAuthorityPath"])
        self.assertEqual({"secretKeyRef": {"name": "videomatch-api-keys", "key": "robot-b"}}, env["Security__ApiKeys__1"])
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual("videomatch-tls", volumes["tls"]["secret"]["secretName"])
        self.assertEqual({"claimName": "videomatch-models", "readOnly": True}, volumes["model"]["persistentVolumeClaim"])
        mount = next(m for m in c["volumeMounts"] if m["name"] == "model")
        self.assertEqual(("/models/matchanything-eloftr", "matchanything-eloftr", True), (mount["mountPath"], mount["subPath"], mount["readOnly"]))
        self.assertEqual("/models/matchanything-eloftr", env["Inference__ModelPath"])
        self.assertEqual("fp16", env["Inference__Precision"])
        self.assertEqual("nvidia", pod["runtimeClassName"])
        self.assertEqual(2, len(pod["tolerations"]))
        self.assertEqual("https", one(docs, "Service", "vm-videomatch")["spec"]["ports"][0]["appProtocol"])

    def test_download_autoscaling_and_monitoring(self):
        docs, _ = manifests(values=[os.path.join(HERE, "values", "download-autoscale.yaml")])
        deployment = one(docs, "Deployment")
        self.assertNotIn("replicas", deployment["spec"], "the HPA owns the replica count")
        init = deployment["spec"]["template"]["spec"]["initContainers"][0]
        init_env = env_of(init)
        self.assertTrue(init_env["MODEL_URL"].endswith(".tar.gz"))
        self.assertEqual(64, len(init_env["MODEL_SHA256"]))
        self.assertIn("sha256sum -c", init["args"][0])
        self.assertTrue(init["securityContext"]["readOnlyRootFilesystem"])
        hpa = one(docs, "HorizontalPodAutoscaler")
        metrics = hpa["spec"]["metrics"]
        self.assertEqual("Pods", metrics[0]["type"])
        self.assertEqual("videomatch_queue_wait_p90_seconds", metrics[0]["pods"]["metric"]["name"])
        self.assertEqual({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}, metrics[1])
        self.assertEqual((2, 10), (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]))
        monitor = one(docs, "ServiceMonitor")
        self.assertEqual([{"port": "metrics", "path": "/metrics", "interval": "15s"}], monitor["spec"]["endpoints"])
        self.assertEqual("kube-prometheus-stack", monitor["metadata"]["labels"]["release"])
        self.assertEqual("25%", one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"])
        self.assertEqual([], [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-headless")])
        dashboard = json.loads(one(docs, "ConfigMap")["data"]["videomatch.json"])
        self.assertEqual("VideoMatch", dashboard["title"])

    def test_dashboard_and_autoscaling_name_only_metrics_the_server_exports(self):
        exported = server_metric_names()
        self.assertIn("videomatch_queue_wait_seconds", exported)
        with open(os.path.join(CHART, "dashboards", "videomatch.json")) as f:
            dashboard = json.load(f)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        self.assertGreaterEqual(len(exprs), 10)
        for expr in exprs:
            for name in re.findall(r"\b(videomatch_[a-z_]+|process_[a-z_]+)", expr):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                self.assertIn(base, exported | {"process_cpu_seconds_total", "process_working_set_bytes"}, expr)

    def test_mistakes_fail_rendering_with_a_message(self):
        cases = [
            # helm checks values.schema.json before any template runs: its answer names the field.
            (["model.source=pvc"], "at '/model/pvc/claimName': minLength"),
            (["model.source=download"], "at '/model/download/url': minLength"),
            (["model.source=download", "model.download.url=https://x/m.tar.gz", "model.path=/opt/m"], "model.path must be a folder under /models/"),
            (["gpu.enabled=false", "server.executionProvider=cuda"], "needs gpu.enabled=true"),
            (["gpu.enabled=true"], "would hold a whole GPU for the weight-free CPU demo"),
            (["autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=2"], "maxReplicas must be at least"),
        ]
        for sets, message in cases:
            code, _, err = render(*sets)
            self.assertEqual(1, code, sets)
            self.assertIn(message, err, sets)
        code, _, err = render(values=[os.path.join(HERE, "invalid", "pvc-without-claim.yaml")])
        self.assertIn("at '/model/pvc/claimName'", err)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("security:\n  apiKeys:\n    keys: [a]\n")
        try:
            code, _, err = render(values=[f.name])
        finally:
            os.unlink(f.name)
        self.assertEqual(1, code)
        self.assertIn("security.apiKeys.secretName is needed", err)


class Helm(unittest.TestCase):
    """What helm itself checks: lint (templates, schema, Chart.yaml) and a render, for every values file."""

    def test_lint_and_template_pass_on_the_defaults_and_every_values_file(self):
        self.assertGreaterEqual(len(VALUES), 4)
        for values in [[]] + [[path] for path in VALUES]:
            with self.subTest(values=[os.path.basename(v) for v in values]):
                files = [a for v in values for a in ("-f", v)]
                code, out, err = helm("lint", "--strict", CHART, *files)
                self.assertEqual(0, code, out + err)
                code, out, err = render(values=values)
                self.assertEqual(0, code, err)

    def test_every_invalid_values_file_fails_lint_and_template(self):
        self.assertGreaterEqual(len(INVALID), 8)
        for path in INVALID:
            with self.subTest(values=os.path.basename(path)):
                code, out, err = helm("lint", CHART, "-f", path)
                self.assertNotEqual(0, code, out)
                code, out, err = render(values=[path])
                self.assertNotEqual(0, code, out)
                self.assertIn("Error:", err)

    def test_keda_renders_a_scaled_object_and_no_hpa(self):
        docs, _ = manifests(values=[os.path.join(HERE, "values", "keda.yaml")])
        scaled = one(docs, "ScaledObject")
        self.assertEqual([], [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"])
        # KEDA owns the replica count: the Deployment states none.
        self.assertNotIn("replicas", one(docs, "Deployment")["spec"])
        spec = scaled["spec"]
        self.assertEqual("vm-videomatch", spec["scaleTargetRef"]["name"])
        self.assertEqual((2, 12), (spec["minReplicaCount"], spec["maxReplicaCount"]))
        prometheus, cpu = spec["triggers"]
        self.assertEqual(("prometheus", "Value"), (prometheus["type"], prometheus["metricType"]))
        self.assertEqual("0.05", prometheus["metadata"]["threshold"])
        query = prometheus["metadata"]["query"]
        # The metric the HPA's adapter rule reads, over this release's pods only.
        self.assertIn("histogram_quantile(0.9", query)
        self.assertIn("videomatch_queue_wait_seconds_bucket", query)
        self.assertIn('namespace="vision"', query)
        self.assertIn('pod=~"vm-videomatch-.*"', query)
        self.assertIn(re.search(r"(videomatch_\w+)_bucket", query).group(1), server_metric_names())
        self.assertEqual("cpu", cpu["type"])
        code, notes, err = render(values=[os.path.join(HERE, "values", "keda.yaml")], notes=True)
        self.assertEqual(0, code, err)
        self.assertIn("get scaledobject vm-videomatch", notes)

    def test_keda_and_the_hpa_at_once_are_refused(self):
        code, _, err = render("autoscaling.enabled=true", "autoscaling.keda.enabled=true")
        self.assertEqual(1, code)
        self.assertIn("at '/autoscaling/keda/enabled': value must be false", err)


class Schema(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(CHART, "values.schema.json")) as f:
            cls.schema = json.load(f)
        jsonschema.Draft7Validator.check_schema(cls.schema)
        with open(os.path.join(CHART, "values.yaml")) as f:
            cls.defaults = yaml.safe_load(f)

    def merged(self, path):
        with open(path) as f:
            return merge(json.loads(json.dumps(self.defaults)), yaml.safe_load(f))

    def test_defaults_and_every_value_set_are_valid(self):
        jsonschema.validate(self.defaults, self.schema)
        self.assertGreaterEqual(len(VALUES), 3)
        for path in VALUES:
            with self.subTest(values=os.path.basename(path)):
                jsonschema.validate(self.merged(path), self.schema)

    def test_invalid_values_are_rejected(self):
        self.assertGreaterEqual(len(INVALID), 5)
        for path in INVALID:
            with self.subTest(values=os.path.basename(path)):
                with self.assertRaises(jsonschema.ValidationError):
                    jsonschema.validate(self.merged(path), self.schema)

    def test_every_default_key_is_described_by_the_schema(self):
        def walk(values, schema, where):
            for key, value in values.items():
                self.assertIn(key, schema.get("properties", {}), f"{where}{key} is not in values.schema.json")
                sub = schema["properties"][key]
                if isinstance(value, dict) and "properties" in sub:
                    walk(value, sub, f"{where}{key}.")
        walk(self.defaults, self.schema, "")


class Lint(unittest.TestCase):
    CONFIG = "{extends: default, rules: {line-length: {max: 160}, document-start: disable, comments: {min-spaces-from-content: 1}, indentation: {indent-sequences: whatever}}}"
    # Rendered output embeds the Grafana dashboard's JSON, whose query lines run long.
    RENDERED = CONFIG.replace("line-length: {max: 160}", "line-length: disable")

    def yamllint(self, path, config=CONFIG):
        done = subprocess.run(["yamllint", "-s", "-d", config, path], capture_output=True, text=True, timeout=60)
        self.assertEqual(0, done.returncode, done.stdout + done.stderr)

    def test_values_files_pass_yamllint(self):
        for path in [os.path.join(CHART, "values.yaml"), os.path.join(CHART, "Chart.yaml")] + VALUES:
            with self.subTest(path=os.path.relpath(path, ROOT)):
                self.yamllint(path)

    def test_rendered_manifests_pass_yamllint(self):
        for path in [None] + VALUES:
            with self.subTest(values=os.path.basename(path or "defaults")):
                _, text = manifests(values=[path] if path else None)
                with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
                    f.write(text)
                try:
                    self.yamllint(f.name, self.RENDERED)
                finally:
                    os.unlink(f.name)


@unittest.skipUnless(os.environ.get("VIDEOMATCH_SERVER_DLL"), "VIDEOMATCH_SERVER_DLL not set (test.sh sets it to the built server)")
class RenderedSettingsStartTheServer(unittest.TestCase):
    def test_server_starts_with_the_chart_environment_and_answers_probes_and_metrics(self):
        docs, _ = manifests(values=[os.path.join(HERE, "values", "cpu.yaml")])
        container = server_container(docs)
        grpc_port, metrics_port = free_port(), free_port()
        env = {k: v for k, v in env_of(container).items() if isinstance(v, str)}
        env["Urls"] = env["Urls"].replace(":50051", f":{grpc_port}")
        env["Metrics__Url"] = env["Metrics__Url"].replace(":9464", f":{metrics_port}")
        env["Inference__WarmUp"] = "false"
        process = subprocess.Popen(["dotnet", os.environ["VIDEOMATCH_SERVER_DLL"]], env=dict(os.environ, **env),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            ready = wait_for(f"http://127.0.0.1:{metrics_port}/healthz/ready", process)
            self.assertEqual("Healthy", ready)
            self.assertEqual("Healthy", fetch(f"http://127.0.0.1:{metrics_port}/healthz/live"))
            metrics = fetch(f"http://127.0.0.1:{metrics_port}/metrics")
            self.assertRegex(metrics, r'(?m)^videomatch_model_ready\{model="embedded"\} 1$')
            self.assertRegex(metrics, r"(?m)^videomatch_frames_received_total 0$")
        finally:
            process.terminate()
            try:
                out, _ = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                out, _ = process.communicate()
        # The chart asked for JSON logs; the model line must be one.
        self.assertIn('"Message":"Model embedded (videomatch-embedded-patch-matcher) loaded', out.replace(": ", ":"))


def merge(base, override):
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def server_settings():
    """Section → setting names, read from the server's and engine's option classes."""
    settings = {}
    for path in glob.glob(os.path.join(ROOT, "src", "**", "*Options.cs"), recursive=True):
        with open(path, encoding="utf-8") as f:
            source = f.read()
        for body in re.split(r"\n(?:public|internal) sealed class ", source)[1:]:
            section = re.search(r'const string Section = "(\w+)"', body)
            if section:
                props = re.findall(r"public [\w\[\]<>?]+ (\w+) \{ get; set; \}", body)
                settings.setdefault(section.group(1), set()).update(props)
    return settings


def server_metric_names():
    with open(os.path.join(ROOT, "src", "VideoMatch.Server", "Observability", "ServerMetrics.cs"), encoding="utf-8") as f:
        return set(re.findall(r'Create\w+\("(videomatch_\w+)"', f.read()))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def wait_for(url, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}): {process.stdout.read()}")
        try:
            return fetch(url)
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds} s")


if __name__ == "__main__":
    unittest.main()
