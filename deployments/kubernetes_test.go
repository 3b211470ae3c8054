package deployments

import (
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Names the manifests share with the service (flags and environment
// variables of `healthscore run`; docs/operations.md).
const (
	adminPort         = 8081
	shutdownGrace     = 30 * time.Second
	inputPartitions   = 8 // partitions of customer-events assumed by the ScaledObject
	serviceName       = "healthscore"
	configMapName     = "healthscore-config"
	modelConfigMap    = "healthscore-model"
	modelPath         = "/etc/healthscore/model/model.yaml"
	kubernetesOverlay = "kubernetes/overlays/"
)

// credentialEnv are the environment twins of secret flags: they may only
// come from Secrets.
var credentialEnv = []string{
	"HEALTHSCORE_REDIS_PASSWORD", "HEALTHSCORE_KAFKA_SASL_PASSWORD", "HEALTHSCORE_KAFKA_SASL_USER", "HEALTHSCORE_REDIS_USER_PASSWORD",
}

// rendered is an overlay rendered by kustomize and decoded strictly.
type rendered struct {
	deployment     appsv1.Deployment
	service        corev1.Service
	serviceAccount corev1.ServiceAccount
	pdb            policyv1.PodDisruptionBudget
	configMaps     map[string]corev1.ConfigMap
	serviceMonitor *serviceMonitor
	rule           *prometheusRuleCR
	scaledObject   *scaledObject
	triggerAuth    *triggerAuthentication
}

// Small structs for the CRDs (Prometheus Operator, KEDA): the fields these
// manifests use, decoded strictly, so a misspelt field fails.
type objectMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

type serviceMonitor struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		JobLabel string `json:"jobLabel,omitempty"`
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type prometheusRuleCR struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   objectMeta     `json:"metadata"`
	Spec       map[string]any `json:"spec"`
}

type scaledObject struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount int `json:"minReplicaCount"`
		MaxReplicaCount int `json:"maxReplicaCount"`
		PollingInterval int `json:"pollingInterval"`
		CooldownPeriod  int `json:"cooldownPeriod"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

type triggerAuthentication struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// render runs kustomize (krusty, the library behind `kubectl kustomize`)
// on an overlay and decodes every resource strictly into its type.
func render(t *testing.T, overlay string) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), kubernetesOverlay+overlay)
	if err != nil {
		t.Fatalf("kustomize %s: %v", overlay, err)
	}
	r := rendered{configMaps: map[string]corev1.ConfigMap{}}
	seen := map[string]int{}
	for _, res := range m.Resources() {
		raw, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		kind := res.GetKind()
		seen[kind]++
		var into any
		switch kind {
		case "Deployment":
			into = &r.deployment
		case "Service":
			into = &r.service
		case "ServiceAccount":
			into = &r.serviceAccount
		case "PodDisruptionBudget":
			into = &r.pdb
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
				t.Fatalf("%s: ConfigMap %s: %v", overlay, res.GetName(), err)
			}
			r.configMaps[cm.Name] = cm
			continue
		case "ServiceMonitor":
			r.serviceMonitor = &serviceMonitor{}
			into = r.serviceMonitor
		case "PrometheusRule":
			r.rule = &prometheusRuleCR{}
			into = r.rule
		case "ScaledObject":
			r.scaledObject = &scaledObject{}
			into = r.scaledObject
		case "TriggerAuthentication":
			r.triggerAuth = &triggerAuthentication{}
			into = r.triggerAuth
		default:
			t.Fatalf("%s: unexpected %s %s: add a strict check for it", overlay, kind, res.GetName())
		}
		if err := yaml.UnmarshalStrict(raw, into); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly: %v", overlay, kind, res.GetName(), err)
		}
	}
	for kind, n := range seen {
		if n > 1 && kind != "ConfigMap" {
			t.Fatalf("%s: %d resources of kind %s", overlay, n, kind)
		}
	}
	return r
}

func TestKustomizeRejectsUnknownFields(t *testing.T) {
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n"), &d); err == nil {
		t.Fatal("a misspelt field decoded: the strict checks check nothing")
	}
	var so scaledObject
	if err := yaml.UnmarshalStrict([]byte("spec:\n  maxReplicas: 2\n"), &so); err == nil {
		t.Fatal("a misspelt ScaledObject field decoded")
	}
}

func TestKustomizeOverlays(t *testing.T) {
	for _, overlay := range []string{"dev", "prod"} {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			checkDeployment(t, r)
			checkServiceAndMonitoring(t, r)
			checkScaling(t, overlay, r)
		})
	}
}

func (r rendered) config(t *testing.T) map[string]string {
	t.Helper()
	for name, cm := range r.configMaps {
		if strings.HasPrefix(name, configMapName+"-") {
			return cm.Data
		}
	}
	t.Fatalf("no ConfigMap %s-<hash>", configMapName)
	return nil
}

func checkDeployment(t *testing.T, r rendered) {
	d := r.deployment
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--admin-http=:" + strconv.Itoa(adminPort), "--model=" + modelPath, "--shutdown-grace=" + shutdownGrace.String()} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("args %q: want the run command first", args)
	}
	// Probes on the admin port: readiness /readyz, liveness /livez.
	var admin int32
	for _, p := range c.Ports {
		if p.Name == "admin" {
			admin = p.ContainerPort
		}
	}
	if admin != adminPort {
		t.Errorf("admin container port %d, want %d (--admin-http)", admin, adminPort)
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s probe %+v: want GET %s on the admin port", name, p, path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/livez")
	probe("startup", c.StartupProbe, "/livez")
	// Shutdown: the grace period covers --shutdown-grace, the final commit
	// (--commit-delay up to 2s plus the commit) and the HTTP shutdown (5s).
	if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < shutdownGrace+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v: want at least --shutdown-grace + 10s", g)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	sc := spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("want runAsNonRoot and a read-only root filesystem")
	}
	if spec.ServiceAccountName != r.serviceAccount.Name {
		t.Errorf("serviceAccountName %q, ServiceAccount %q", spec.ServiceAccountName, r.serviceAccount.Name)
	}
	// The model comes from the generated ConfigMap, mounted where --model reads.
	var modelCM string
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && strings.HasPrefix(v.ConfigMap.Name, modelConfigMap+"-") {
			modelCM = v.ConfigMap.Name
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name && m.MountPath+"/model.yaml" != modelPath {
					t.Errorf("model mounted at %s, --model reads %s", m.MountPath, modelPath)
				}
			}
		}
	}
	cm, ok := r.configMaps[modelCM]
	if !ok {
		t.Fatalf("no model ConfigMap volume (%q)", modelCM)
	}
	want, err := os.ReadFile("kubernetes/base/model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["model.yaml"] != string(want) {
		t.Error("the model ConfigMap is not kubernetes/base/model.yaml")
	}
	// Configuration from the generated ConfigMap; credentials only from Secrets.
	var fromConfig bool
	for _, e := range c.EnvFrom {
		if e.ConfigMapRef != nil && r.configMaps[e.ConfigMapRef.Name].Name != "" && strings.HasPrefix(e.ConfigMapRef.Name, configMapName) {
			fromConfig = true
		}
	}
	if !fromConfig {
		t.Error("no envFrom of the generated healthscore-config ConfigMap")
	}
	cfg := r.config(t)
	for k, v := range cfg {
		if !strings.HasPrefix(k, "HEALTHSCORE_") {
			t.Errorf("config key %s is not a HEALTHSCORE_ variable", k)
		}
		if slices.Contains(credentialEnv, k) || strings.Contains(strings.ToLower(k), "password") || strings.Contains(strings.ToLower(k), "token") {
			t.Errorf("config key %s is a credential: use a Secret", k)
		}
		if strings.Contains(v, "@") {
			t.Errorf("config %s=%q may carry credentials in a URL: use a Secret", k, v)
		}
	}
	if cfg["HEALTHSCORE_BROKERS"] == "" || cfg["HEALTHSCORE_REDIS_URL"] == "" {
		t.Error("HEALTHSCORE_BROKERS and HEALTHSCORE_REDIS_URL must be set: empty starts the embedded, in-memory broker and Redis")
	}
	for _, e := range c.Env {
		if slices.Contains(credentialEnv, e.Name) && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("env %s: credentials come from a secretKeyRef", e.Name)
		}
		if e.Value != "" && (strings.Contains(strings.ToLower(e.Name), "password") || strings.Contains(strings.ToLower(e.Name), "token")) {
			t.Errorf("env %s has a literal value", e.Name)
		}
	}
	// Every *-file flag reads a mounted Secret.
	for _, a := range c.Args {
		name, path, ok := strings.Cut(a, "=")
		if !ok || !(strings.HasSuffix(name, "-file") || strings.HasSuffix(name, "-ca") || strings.HasSuffix(name, "-cert") || strings.HasSuffix(name, "-key")) {
			continue
		}
		if !mountedFromSecret(spec, c, path) {
			t.Errorf("%s reads %s, which no Secret volume provides", name, path)
		}
	}
}

// mountedFromSecret reports whether path is a file of a Secret volume.
func mountedFromSecret(spec corev1.PodSpec, c corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, m.MountPath+"/")
		if !ok {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				return true
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return true
				}
			}
		}
	}
	return false
}

func checkServiceAndMonitoring(t *testing.T, r rendered) {
	if r.service.Name != serviceName {
		t.Errorf("Service %q: the alert rules select job=%q, the Service name", r.service.Name, serviceName)
	}
	podLabels := r.deployment.Spec.Template.Labels
	for k, v := range r.service.Spec.Selector {
		if podLabels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pods %v", k, v, podLabels)
		}
	}
	for k, v := range r.pdb.Spec.Selector.MatchLabels {
		if podLabels[k] != v {
			t.Errorf("PodDisruptionBudget selector %s=%s does not match the pods", k, v)
		}
	}
	if r.pdb.Spec.MaxUnavailable == nil || r.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", r.pdb.Spec.MaxUnavailable)
	}
	sm := r.serviceMonitor
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if r.service.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, the Service has %v", k, v, r.service.Labels)
		}
	}
	if sm.Spec.JobLabel != "" {
		t.Error("ServiceMonitor jobLabel changes the job label the rules select")
	}
	ports := map[string]int32{}
	for _, p := range r.service.Spec.Ports {
		ports[p.Name] = p.Port
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" || ports[sm.Spec.Endpoints[0].Port] != adminPort {
		t.Errorf("ServiceMonitor endpoints %+v: want /metrics on the admin port", sm.Spec.Endpoints)
	}
	if r.rule == nil {
		t.Fatal("no PrometheusRule")
	}
	var plain map[string]any
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &plain); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.rule.Spec, plain) {
		t.Error("the rendered PrometheusRule's spec is not prometheus/rules.yaml")
	}
}

func checkScaling(t *testing.T, overlay string, r rendered) {
	so := r.scaledObject
	if overlay == "dev" {
		if so != nil {
			t.Error("dev: no autoscaling expected")
		}
		if r.deployment.Spec.Replicas == nil || *r.deployment.Spec.Replicas != 1 {
			t.Error("dev: want one replica")
		}
		return
	}
	if so == nil {
		t.Fatal("no ScaledObject")
	}
	if r.deployment.Spec.Replicas != nil {
		t.Error("the Deployment sets replicas although KEDA owns them: every apply would reset the count")
	}
	if so.APIVersion != "keda.sh/v1alpha1" || so.Spec.ScaleTargetRef.Name != r.deployment.Name {
		t.Errorf("ScaledObject %s targets %q", so.APIVersion, so.Spec.ScaleTargetRef.Name)
	}
	if so.Spec.MinReplicaCount < 2 || so.Spec.MaxReplicaCount > inputPartitions || so.Spec.MinReplicaCount > so.Spec.MaxReplicaCount {
		t.Errorf("replicas %d..%d: want at least 2, at most the %d input partitions", so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount, inputPartitions)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
		t.Fatalf("triggers %+v: want one kafka trigger", so.Spec.Triggers)
	}
	tr := so.Spec.Triggers[0]
	cfg := r.config(t)
	checks := []struct{ key, want string }{
		{"bootstrapServers", cfg["HEALTHSCORE_BROKERS"]},
		{"consumerGroup", cfg["HEALTHSCORE_GROUP"]},
		{"topic", cfg["HEALTHSCORE_TOPICS"]},
		{"allowIdleConsumers", "false"},
	}
	for _, c := range checks {
		if tr.Metadata[c.key] != c.want {
			t.Errorf("kafka trigger %s=%q, want %q (as the service)", c.key, tr.Metadata[c.key], c.want)
		}
	}
	if n, err := strconv.Atoi(tr.Metadata["lagThreshold"]); err != nil || n <= 0 {
		t.Errorf("lagThreshold %q", tr.Metadata["lagThreshold"])
	}
	if cfg["HEALTHSCORE_KAFKA_SASL_MECHANISM"] != "" {
		if tr.AuthenticationRef == nil || r.triggerAuth == nil || tr.AuthenticationRef.Name != r.triggerAuth.Metadata.Name {
			t.Fatal("Kafka uses SASL but the trigger has no TriggerAuthentication")
		}
		want := "scram_" + strings.ToLower(strings.TrimPrefix(strings.ReplaceAll(cfg["HEALTHSCORE_KAFKA_SASL_MECHANISM"], "-", ""), "SCRAM"))
		if got := tr.Metadata["sasl"]; got != want {
			t.Errorf("trigger sasl %q, service uses %s (want %q)", got, cfg["HEALTHSCORE_KAFKA_SASL_MECHANISM"], want)
		}
		params := map[string]bool{}
		for _, s := range r.triggerAuth.Spec.SecretTargetRef {
			params[s.Parameter] = true
		}
		for _, p := range []string{"username", "password"} {
			if !params[p] {
				t.Errorf("TriggerAuthentication lacks %s", p)
			}
		}
	}
}
