{{/* The chart name, shortened to Kubernetes' 63 characters. */}}
{{- define "lakeplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's resource name. */}}
{{- define "lakeplane.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "lakeplane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "lakeplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the server pods. */}}
{{- define "lakeplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lakeplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* The service account the server (and worker pods) run as. */}}
{{- define "lakeplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lakeplane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The service account worker pods run as (Kubernetes launcher). */}}
{{- define "lakeplane.workerServiceAccountName" -}}
{{- default (printf "%s-worker" (include "lakeplane.fullname" .)) .Values.workers.serviceAccount.name }}
{{- end }}

{{/* The Secret holding the database URL and signing secrets. */}}
{{- define "lakeplane.secretName" -}}
{{- default (include "lakeplane.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* The image reference. */}}
{{- define "lakeplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The namespace worker objects go to. */}}
{{- define "lakeplane.workerNamespace" -}}
{{- default .Release.Namespace .Values.workers.namespace }}
{{- end }}

{{/* Whether the metadata database is external PostgreSQL. */}}
{{- define "lakeplane.externalDatabase" -}}
{{- if eq .Values.database.mode "external" }}true{{ end }}
{{- end }}

{{/* Whether the server needs a persistent volume: the embedded database or the local lake. */}}
{{- define "lakeplane.needsVolume" -}}
{{- if or (eq .Values.database.mode "embedded") (eq .Values.storage.kind "local") }}true{{ end }}
{{- end }}

{{/* Refuses value combinations that cannot work, with the reason. */}}
{{- define "lakeplane.validate" -}}
{{- $replicas := int .Values.replicaCount }}
{{- $scaled := or (gt $replicas 1) .Values.autoscaling.enabled }}
{{- if and $scaled (eq .Values.database.mode "embedded") }}
{{- fail "more than one replica (replicaCount > 1 or autoscaling) needs database.mode=external: the embedded SQLite database lives on one pod's volume" }}
{{- end }}
{{- if and $scaled (eq .Values.storage.kind "local") }}
{{- fail "more than one replica needs storage.kind=s3: a local lake lives on one pod's volume" }}
{{- end }}
{{- if and (eq .Values.database.mode "external") (not .Values.existingSecret) (not .Values.database.external.url) }}
{{- fail "database.mode=external needs database.external.url or existingSecret (with LAKEPLANE__DATABASE__URL)" }}
{{- end }}
{{- if and $scaled (not .Values.existingSecret) (or (not .Values.secrets.signingKey) (not .Values.secrets.urlSigningSecret)) }}
{{- fail "several replicas must share one token signing key and one URL-signing secret: set secrets.signingKey and secrets.urlSigningSecret, or existingSecret" }}
{{- end }}
{{- if and (eq .Values.workers.launcher "kubernetes") (or (eq .Values.database.mode "embedded") (eq .Values.storage.kind "local")) }}
{{- fail "workers.launcher=kubernetes runs workers in their own pods, which need database.mode=external and storage.kind=s3 (they cannot reach the server's volume)" }}
{{- end }}
{{- if and (eq .Values.workers.launcher "kubernetes") (not .Values.existingSecret) (or (not .Values.secrets.signingKey) (not .Values.secrets.urlSigningSecret)) }}
{{- fail "workers.launcher=kubernetes needs secrets.signingKey and secrets.urlSigningSecret, or existingSecret: worker pods have no volume to keep generated keys on" }}
{{- end }}
{{- $ephemeral := or (not (include "lakeplane.needsVolume" .)) (not .Values.persistence.enabled) }}
{{- if and $ephemeral (not .Values.existingSecret) (or (not .Values.secrets.signingKey) (not .Values.secrets.urlSigningSecret)) }}
{{- fail "without a persistent data volume, generated keys would change on every restart (invalidating every token): set secrets.signingKey and secrets.urlSigningSecret, or existingSecret" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not $scaled) }}
{{- fail "a PodDisruptionBudget with one replica blocks node drains: enable it with replicaCount > 1 or autoscaling" }}
{{- end }}
{{- if and (eq .Values.storage.kind "s3") (not .Values.storage.s3.region) }}
{{- fail "storage.kind=s3 needs storage.s3.region" }}
{{- end }}
{{- end }}

{{/* Namespaces that need the config, the Secret and the service account: the release's, and
the worker namespace when Kubernetes workers run elsewhere (pods can only mount objects of
their own namespace). A JSON array. */}}
{{- define "lakeplane.podNamespaces" -}}
{{- $namespaces := list .Release.Namespace }}
{{- if and (eq .Values.workers.launcher "kubernetes") (ne (include "lakeplane.workerNamespace" .) .Release.Namespace) }}
{{- $namespaces = append $namespaces (include "lakeplane.workerNamespace" .) }}
{{- end }}
{{- toJson $namespaces }}
{{- end }}

{{/* Whether the chart renders its own Secret (there is something to put in it). */}}
{{- define "lakeplane.chartSecret" -}}
{{- if and (not .Values.existingSecret) (or .Values.database.external.url .Values.secrets.signingKey .Values.secrets.urlSigningSecret) }}true{{ end }}
{{- end }}

{{/* Whether pods take environment from a Secret. */}}
{{- define "lakeplane.hasSecret" -}}
{{- if or .Values.existingSecret (include "lakeplane.chartSecret" .) }}true{{ end }}
{{- end }}
