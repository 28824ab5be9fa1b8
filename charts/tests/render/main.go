// Command render renders a Helm chart's templates the way `helm template` does, for machines without helm:
// Go text/template with Masterminds/sprig plus the helm functions charts use (include, tpl, toYaml,
// fromYaml, required, fail, lookup) and the .Values/.Release/.Chart/.Capabilities/.Files objects.
// It covers what the videomatch chart needs; it is not a full Helm (no subcharts, hooks or CRD handling).
//
//	render -chart DIR [-f values.yaml]... [-set a.b=c]... [-name R] [-namespace N] [-notes]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	chartDir := flag.String("chart", ".", "chart folder")
	release := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	notes := flag.Bool("notes", false, "render NOTES.txt instead of the manifests")
	var valueFiles, sets listFlag
	flag.Var(&valueFiles, "f", "values file (repeatable; later files win)")
	flag.Var(&sets, "set", "a.b.c=value (repeatable; after the files)")
	flag.Parse()

	out, err := render(*chartDir, *release, *namespace, valueFiles, sets, *notes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	fmt.Print(out)
}

func render(chartDir, release, namespace string, valueFiles, sets []string, notes bool) (string, error) {
	chartMeta, err := readYAMLMap(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	values, err := readYAMLMap(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, f := range valueFiles {
		override, err := readYAMLMap(f)
		if err != nil {
			return "", err
		}
		values = coalesce(values, override)
	}
	for _, s := range sets {
		if err := setValue(values, s); err != nil {
			return "", err
		}
	}

	name := fmt.Sprint(chartMeta["name"])
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart": map[string]interface{}{
			"Name": name, "Version": chartMeta["version"], "AppVersion": chartMeta["appVersion"],
			"Description": chartMeta["description"], "KubeVersion": chartMeta["kubeVersion"],
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30", "GitVersion": "v1.30.0"},
			"APIVersions": apiVersions{"v1", "apps/v1", "autoscaling/v2", "policy/v1"},
		},
		"Files":    files{dir: chartDir},
		"Template": map[string]interface{}{"BasePath": name + "/templates"},
	}

	root := template.New(name)
	root.Option("missingkey=zero")
	root.Funcs(funcMap(root))
	templatesDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(templatesDir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		text, err := os.ReadFile(filepath.Join(templatesDir, e.Name()))
		if err != nil {
			return "", err
		}
		full := path.Join(name, "templates", e.Name())
		if _, err := root.New(full).Parse(string(text)); err != nil {
			return "", err
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)

	var out strings.Builder
	for _, file := range names {
		isNotes := file == "NOTES.txt"
		// Partials (_*) and .tpl files only define templates; NOTES.txt is rendered on its own.
		if strings.HasPrefix(file, "_") || isNotes != notes || !(isNotes || strings.HasSuffix(file, ".yaml") || strings.HasSuffix(file, ".yml")) {
			continue
		}
		full := path.Join(name, "templates", file)
		data := copyTop(top, full)
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, data); err != nil {
			return "", cleanError(err)
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if notes {
			out.WriteString(text)
			continue
		}
		out.WriteString("---\n# Source: " + full + "\n")
		out.WriteString(strings.TrimLeft(text, "\n"))
		if !strings.HasSuffix(text, "\n") {
			out.WriteString("\n")
		}
	}
	return out.String(), nil
}

func copyTop(top map[string]interface{}, name string) map[string]interface{} {
	c := make(map[string]interface{}, len(top))
	for k, v := range top {
		c[k] = v
	}
	c["Template"] = map[string]interface{}{"Name": name, "BasePath": top["Template"].(map[string]interface{})["BasePath"]}
	return c
}

// fail and required end rendering with their message, the way helm prints it.
type renderError struct{ msg string }

func (e renderError) Error() string { return e.msg }

func cleanError(err error) error {
	var re renderError
	if errors.As(err, &re) {
		return fmt.Errorf("%s (%v)", re.msg, err)
	}
	return err
}

func funcMap(root *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	// Helm removes these for safety.
	delete(f, "env")
	delete(f, "expandenv")
	includeDepth := 0
	f["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 100 {
			return "", fmt.Errorf("include %q: too deep", name)
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, renderError{msg}
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, renderError{msg}
		}
		return v, nil
	}
	f["fail"] = func(msg string) (string, error) { return "", renderError{msg} }
	f["toYaml"] = toYAML
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["lookup"] = func(apiVersion, kind, namespace, name string) map[string]interface{} {
		// Like `helm template`: no cluster, nothing found.
		return map[string]interface{}{}
	}
	return f
}

// toYAML renders like helm's (two-space indent, sorted keys, no trailing newline; empty on error).
func toYAML(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(jsonish(v)); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// jsonish turns whole floats back into integers for printing (helm's JSON round trip prints 4, not 4.0).
func jsonish(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, x := range t {
			m[k] = jsonish(x)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, x := range t {
			l[i] = jsonish(x)
		}
		return l
	case float64:
		if t == float64(int64(t)) {
			return int64(t)
		}
		return t
	default:
		return v
	}
}

type apiVersions []string

func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

type files struct{ dir string }

func (f files) Get(name string) string {
	b, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(name)))
	if err != nil {
		return ""
	}
	return string(b)
}

// readYAMLMap reads a YAML mapping with helm's number semantics: values pass through JSON, so every
// number is a float64.
func readYAMLMap(file string) (map[string]interface{}, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var v interface{}
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if v == nil {
		return map[string]interface{}{}, nil
	}
	asJSON, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	m := map[string]interface{}{}
	if err := json.Unmarshal(asJSON, &m); err != nil {
		return nil, fmt.Errorf("%s: not a mapping: %w", file, err)
	}
	return m, nil
}

// coalesce merges override into base like helm: maps merge key by key, anything else replaces, and a
// null in the override deletes the key.
func coalesce(base, override map[string]interface{}) map[string]interface{} {
	for k, v := range override {
		if v == nil {
			delete(base, k)
			continue
		}
		if vm, ok := v.(map[string]interface{}); ok {
			if bm, ok := base[k].(map[string]interface{}); ok {
				base[k] = coalesce(bm, vm)
				continue
			}
		}
		base[k] = v
	}
	return base
}

// setValue applies one --set a.b.c=value (value typed as helm does: numbers, booleans, null, else string).
func setValue(values map[string]interface{}, assignment string) error {
	eq := strings.Index(assignment, "=")
	if eq <= 0 {
		return fmt.Errorf("--set %q: want key=value", assignment)
	}
	keys := strings.Split(assignment[:eq], ".")
	raw := assignment[eq+1:]
	var value interface{} = raw
	switch {
	case raw == "true" || raw == "false":
		value = raw == "true"
	case raw == "null":
		value = nil
	default:
		if n, err := strconv.ParseFloat(raw, 64); err == nil {
			value = n
		}
	}
	m := values
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[k] = next
		}
		m = next
	}
	last := keys[len(keys)-1]
	if value == nil {
		delete(m, last)
	} else {
		m[last] = value
	}
	return nil
}
