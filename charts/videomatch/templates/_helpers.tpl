{{/* Chart name, shortened to fit DNS labels. */}}
{{- define "videomatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-name unless the release already carries the chart's name. */}}
{{- define "videomatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "videomatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "videomatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "videomatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "videomatch.labels" -}}
helm.sh/chart: {{ include "videomatch.chart" . }}
{{ include "videomatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "videomatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "videomatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: the tag defaults to appVersion-gpu or appVersion-cpu. */}}
{{- define "videomatch.image" -}}
{{- $flavor := ternary "gpu" "cpu" .Values.gpu.enabled }}
{{- $tag := default (printf "%s-%s" .Chart.AppVersion $flavor) .Values.image.tag }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/* ONNX Runtime execution provider: cuda on GPU pods unless set. */}}
{{- define "videomatch.executionProvider" -}}
{{- if and .Values.gpu.enabled (eq .Values.model.source "embedded") }}
{{- fail "gpu.enabled=true with model.source=embedded would hold a whole GPU for the weight-free CPU demo: serve an exported model (model.source=image, pvc or download) or set gpu.enabled=false" }}
{{- end }}
{{- $ep := .Values.server.executionProvider | default (ternary "cuda" "cpu" .Values.gpu.enabled) }}
{{- if and (eq $ep "cuda") (not .Values.gpu.enabled) }}
{{- fail "server.executionProvider=cuda needs gpu.enabled=true (a pod without a GPU cannot run the CUDA provider)" }}
{{- end }}
{{- $ep }}
{{- end }}

{{- define "videomatch.tls" -}}
{{- if .Values.security.tls.secretName }}true{{ end }}
{{- end }}

{{/* Probe kind: http whenever the gRPC port speaks TLS (kubelet's gRPC probe is plaintext only). */}}
{{- define "videomatch.probeKind" -}}
{{- if include "videomatch.tls" . }}http{{ else }}{{ .Values.probes.kind }}{{ end }}
{{- end }}

{{/* One probe's handler: grpc.health.v1 (service "" = ready, "liveness" = alive) or HTTP on the metrics port. */}}
{{- define "videomatch.probeHandler" -}}
{{- $root := index . 0 }}
{{- $what := index . 1 }}
{{- if eq (include "videomatch.probeKind" $root) "grpc" -}}
grpc:
  port: {{ $root.Values.ports.grpc }}
  service: {{ ternary "liveness" "" (eq $what "live") | quote }}
{{- else -}}
httpGet:
  path: /healthz/{{ $what }}
  port: metrics
{{- end }}
{{- end }}

{{- define "videomatch.modelMounted" -}}
{{- if has .Values.model.source (list "pvc" "download") }}true{{ end }}
{{- end }}
