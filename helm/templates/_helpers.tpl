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

{{/* The Secret's keys as files where config/production.toml reads them. */}}
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
