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

{{/* Labels on the server's objects. */}}
{{- define "lakeplane.labels" -}}
{{ include "lakeplane.componentLabels" (list . "server") }}
{{- end }}

{{/* Labels on the objects of one component, `(list $ "worker")`: each key once, since a
repeated key is invalid YAML that some parsers refuse. */}}
{{- define "lakeplane.componentLabels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "lakeplane.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
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

{{/* The Secret worker pods take their environment from (Kubernetes launcher): the database
URL and the ingest key only. */}}
{{- define "lakeplane.workerSecretName" -}}
{{- default (printf "%s-worker" (include "lakeplane.fullname" .)) .Values.workers.existingSecret }}
{{- end }}

{{/* The image reference. */}}
{{- define "lakeplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The namespace worker objects go to: never the release's, where the launcher's Role
would reach the server's own Deployment. */}}
{{- define "lakeplane.workerNamespace" -}}
{{- default (printf "%s-workers" .Release.Namespace | trunc 63 | trimSuffix "-") .Values.workers.namespace }}
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
{{- if eq .Values.workers.launcher "kubernetes" }}
{{- if eq (include "lakeplane.workerNamespace" .) .Release.Namespace }}
{{- fail "workers.namespace must differ from the release namespace: the launcher's Role creates, patches and deletes Deployments there, which would include the server's own" }}
{{- end }}
{{- if and .Values.existingSecret (not .Values.workers.existingSecret) }}
{{- fail "existingSecret with workers.launcher=kubernetes needs workers.existingSecret: a Secret in the worker namespace with LAKEPLANE__DATABASE__URL (and LAKEPLANE__INGEST__SECRET_KEY if streams have secret properties) and without the server's signing keys" }}
{{- end }}
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
{{- if and .Values.sharing.enabled (not .Values.sharing.publicUrl) }}
{{- fail "sharing.enabled needs sharing.publicUrl, the URL recipients reach the server at (e.g. https://lake.example.com): it goes into their profiles and file URLs, which the server would otherwise build from each request's Host header" }}
{{- end }}
{{- $egress := .Values.networkPolicy.egress }}
{{- if .Values.networkPolicy.enabled }}
{{- if and (include "lakeplane.externalDatabase" .) (not $egress.database.cidrs) (not $egress.database.peers) }}
{{- fail "networkPolicy.enabled with database.mode=external needs networkPolicy.egress.database.cidrs (the PostgreSQL host's addresses) or .peers (inside the cluster): the policies let out only what they name" }}
{{- end }}
{{- if and (eq .Values.storage.kind "s3") (not $egress.s3.cidrs) (not $egress.s3.peers) }}
{{- fail "networkPolicy.enabled with storage.kind=s3 needs networkPolicy.egress.s3.cidrs (the S3 endpoint's addresses) or .peers (inside the cluster): the policies let out only what they name" }}
{{- end }}
{{- if and (eq .Values.workers.launcher "kubernetes") (not $egress.kubernetesApi.cidrs) }}
{{- fail "networkPolicy.enabled with workers.launcher=kubernetes needs networkPolicy.egress.kubernetesApi.cidrs (the API server's addresses, `kubectl get endpoints kubernetes`): the policies let out only what they name" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Namespaces that need the ConfigMap: the release's, and the worker namespace with the
Kubernetes launcher (pods can only mount objects of their own namespace). A JSON array. */}}
{{- define "lakeplane.podNamespaces" -}}
{{- $namespaces := list .Release.Namespace }}
{{- if eq .Values.workers.launcher "kubernetes" }}
{{- $namespaces = append $namespaces (include "lakeplane.workerNamespace" .) }}
{{- end }}
{{- toJson $namespaces }}
{{- end }}

{{/* Whether the chart renders its own Secret (there is something to put in it). */}}
{{- define "lakeplane.chartSecret" -}}
{{- if and (not .Values.existingSecret) (or .Values.database.external.url .Values.secrets.signingKey .Values.secrets.urlSigningSecret .Values.secrets.ingestSecretKey) }}true{{ end }}
{{- end }}

{{/* An egress rule to one destination of networkPolicy.egress (its `cidrs` and `peers`) on
its TCP `ports`; nothing when it names no one. */}}
{{- define "lakeplane.egressTo" -}}
{{- if or .cidrs .peers }}
- to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . | quote }}
    {{- end }}
    {{- with .peers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- end }}

{{/* What both the server and worker pods may reach: DNS, the database, S3, Kafka brokers and
the extra rules. A list of NetworkPolicyEgressRule. */}}
{{- define "lakeplane.workEgress" -}}
{{- $egress := .Values.networkPolicy.egress -}}
- to:
    {{- toYaml $egress.dns | nindent 4 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- if include "lakeplane.externalDatabase" . }}
{{- include "lakeplane.egressTo" $egress.database }}
{{- end }}
{{- if eq .Values.storage.kind "s3" }}
{{- include "lakeplane.egressTo" $egress.s3 }}
{{- end }}
{{- include "lakeplane.egressTo" $egress.kafka }}
{{- with $egress.extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Whether pods take environment from a Secret. */}}
{{- define "lakeplane.hasSecret" -}}
{{- if or .Values.existingSecret (include "lakeplane.chartSecret" .) }}true{{ end }}
{{- end }}
