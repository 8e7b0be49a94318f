{{/* Names ------------------------------------------------------------------- */}}
{{- define "privydrop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "privydrop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>", within 63 characters. */}}
{{- define "privydrop.component" -}}
{{- printf "%s-%s" (include "privydrop.fullname" .root | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "privydrop.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "privydrop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: privydrop
{{- end -}}

{{/* Selector labels of one component: dict "root" $ "component" "signal". */}}
{{- define "privydrop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "privydrop.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "privydrop.componentLabels" -}}
{{ include "privydrop.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "privydrop.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{- define "privydrop.secretName" -}}
{{- default (printf "%s-secrets" (include "privydrop.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "privydrop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "privydrop.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "privydrop.redisHost" -}}
{{- if eq .Values.redis.mode "external" -}}
{{- required "redis.external.host is required when redis.mode=external" .Values.redis.external.host -}}
{{- else -}}
{{- include "privydrop.component" (dict "root" . "component" "redis") -}}
{{- end -}}
{{- end -}}

{{- define "privydrop.redisPort" -}}
{{- if eq .Values.redis.mode "external" -}}{{ include "privydrop.int" .Values.redis.external.port }}{{- else -}}6379{{- end -}}
{{- end -}}

{{/* An integer value as decimal digits. Helm reads every number in values as a
     float, and prints one of a million or more as "1.048576e+06", which the
     binaries rightly refuse; a fraction is an error here, not a truncation. */}}
{{- define "privydrop.int" -}}
{{- if ne (float64 .) (float64 (int64 .)) -}}
{{- fail (printf "expected an integer, got %v" .) -}}
{{- end -}}
{{- printf "%d" (int64 .) -}}
{{- end -}}

{{- define "privydrop.corsOrigin" -}}
{{- if .Values.config.corsOrigin -}}
{{- .Values.config.corsOrigin -}}
{{- else if .Values.ingress.hosts -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) (first .Values.ingress.hosts) -}}
{{- end -}}
{{- end -}}

{{/* Hardened container securityContext (non-root, read-only root filesystem). */}}
{{- define "privydrop.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "privydrop.podSecurityContext" -}}
runAsNonRoot: true
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Checksum of everything the pods read from ConfigMaps and Secrets: a
     change rolls the Deployments. */}}
{{- define "privydrop.configChecksum" -}}
{{- $cm := include (print .Template.BasePath "/configmap.yaml") . -}}
{{- $sec := include (print .Template.BasePath "/secret.yaml") . -}}
{{- printf "%s\n%s" $cm $sec | sha256sum -}}
{{- end -}}

{{/* Grace period check: longer than preStop + drain. */}}
{{- define "privydrop.gracePeriod" -}}
{{- $min := add .preStopSleepSeconds (div (add .drainTimeoutMs 999) 1000) -}}
{{- if le (int .terminationGracePeriodSeconds) (int $min) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be longer than preStopSleepSeconds + drainTimeoutMs (%v s)" .terminationGracePeriodSeconds $min) -}}
{{- end -}}
{{- .terminationGracePeriodSeconds -}}
{{- end -}}

{{/* Env vars that name Redis: host and port, with redis.mode=sentinel the
     sentinels and the master's name, with redis.mode=cluster some of the
     cluster's nodes; passwords from the Secret. */}}
{{- define "privydrop.redisEnv" -}}
{{- if eq .Values.redis.mode "cluster" }}
- name: REDIS_CLUSTER_NODES
  valueFrom: {configMapKeyRef: {name: {{ include "privydrop.fullname" . }}, key: REDIS_CLUSTER_NODES}}
{{- else if eq .Values.redis.mode "sentinel" }}
- name: REDIS_SENTINELS
  valueFrom: {configMapKeyRef: {name: {{ include "privydrop.fullname" . }}, key: REDIS_SENTINELS}}
- name: REDIS_SENTINEL_MASTER
  valueFrom: {configMapKeyRef: {name: {{ include "privydrop.fullname" . }}, key: REDIS_SENTINEL_MASTER}}
{{- if .Values.redis.sentinel.auth }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "privydrop.secretName" . }}, key: redis-sentinel-password}}
{{- end }}
{{- else }}
- name: REDIS_HOST
  valueFrom: {configMapKeyRef: {name: {{ include "privydrop.fullname" . }}, key: REDIS_HOST}}
- name: REDIS_PORT
  valueFrom: {configMapKeyRef: {name: {{ include "privydrop.fullname" . }}, key: REDIS_PORT}}
{{- end }}
- name: REDIS_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "privydrop.secretName" . }}, key: redis-password}}
{{- end -}}

{{/* REDIS_CLUSTER_NODES: redis.cluster.nodes joined, required in cluster mode. */}}
{{- define "privydrop.redisClusterNodes" -}}
{{- if not .Values.redis.cluster.nodes -}}
{{- fail "redis.cluster.nodes is required when redis.mode=cluster" -}}
{{- end -}}
{{- join "," .Values.redis.cluster.nodes -}}
{{- end -}}

{{/* REDIS_SENTINELS: redis.sentinel.hosts joined, required in sentinel mode. */}}
{{- define "privydrop.redisSentinels" -}}
{{- if not .Values.redis.sentinel.hosts -}}
{{- fail "redis.sentinel.hosts is required when redis.mode=sentinel" -}}
{{- end -}}
{{- join "," .Values.redis.sentinel.hosts -}}
{{- end -}}

{{/* Scheduling of one component's pods: dict "root" $ "component" NAME "v" VALUES.
     Without an explicit affinity, replicas prefer different nodes. */}}
{{- define "privydrop.scheduling" -}}
{{- with .v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .v.affinity }}
affinity:
  {{- toYaml .v.affinity | nindent 2 }}
{{- else }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "privydrop.selectorLabels" . | nindent 14 }}
{{- end }}
{{- end -}}

{{/* A PodDisruptionBudget for one component: dict "root" $ "component" NAME "v" VALUES. */}}
{{- define "privydrop.pdb" -}}
{{- if .v.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "privydrop.component" . }}
  labels:
    {{- include "privydrop.componentLabels" . | nindent 4 }}
spec:
  minAvailable: {{ .v.pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "privydrop.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
