{{/* Names and labels shared by every resource. */}}
{{- define "bff.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bff.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bff.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bff.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bff.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "bff.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bff.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bff.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bff.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The pod and container security settings of every container of the chart. */}}
{{- define "bff.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "bff.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Where the Secret's keys are mounted, as files. */}}
{{- define "bff.secretsDir" -}}
/var/run/secrets/autoshares-bff
{{- end -}}

{{/*
The service's configuration: the values' `config`, plus what the chart decides itself:
the shutdown grace (from `shutdown`, so that the pod's termination grace period is
computed from the same number), and the files of the optional secrets that are mounted.
The required ones are named by the image's config/production.toml.
*/}}
{{- define "bff.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $dir := include "bff.secretsDir" . -}}
{{- $_ := set $config "server" (merge (dict "shutdown_grace_s" .Values.shutdown.graceSeconds) (default (dict) $config.server)) -}}
{{- if .Values.secrets.keys.redisUrl -}}
{{- $_ := set $config "redis" (merge (dict "url_file" (printf "%s/redis-url" $dir)) (default (dict) $config.redis)) -}}
{{- end -}}
{{- if .Values.secrets.keys.adminToken -}}
{{- $_ := set $config "admin" (merge (dict "token_file" (printf "%s/admin-token" $dir)) (default (dict) $config.admin)) -}}
{{- end -}}
{{- toPrettyJson $config -}}
{{- end -}}

{{/* The Secret's keys as files: the required ones where config/production.toml reads
them, the optional ones where bff.config points. */}}
{{- define "bff.secretVolume" -}}
- name: secrets
  secret:
    secretName: {{ required "secrets.existingSecret is required" .Values.secrets.existingSecret }}
    defaultMode: 0400
    items:
      {{- range $file, $key := dict "app-key" .Values.secrets.keys.appKey "password" .Values.secrets.keys.password "token-secret" .Values.secrets.keys.tokenSecret "database-url" .Values.secrets.keys.databaseUrl "redis-url" .Values.secrets.keys.redisUrl "admin-token" .Values.secrets.keys.adminToken }}
      {{- if $key }}
      - key: {{ $key }}
        path: {{ $file }}
      {{- end }}
      {{- end }}
{{- end -}}
