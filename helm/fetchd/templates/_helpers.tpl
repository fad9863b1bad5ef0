{{/* Names and labels. */}}
{{- define "fetchd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fetchd.fullname" -}}
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

{{- define "fetchd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fetchd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fetchd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fetchd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "fetchd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fetchd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The fetchd config file: .Values.config with the listen addresses taken from
.Values.ports. fetchd --check_config validates it (tests/deploy).
*/}}
{{- define "fetchd.configJson" -}}
{{- $cfg := deepCopy (default (dict) .Values.config) -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.ports.grpc)) -}}
{{- $metrics := deepCopy (default (dict) (get $cfg "metrics")) -}}
{{- $_ := set $metrics "listen" (printf "0.0.0.0:%d" (int .Values.ports.metrics)) -}}
{{- $_ := set $cfg "metrics" $metrics -}}
{{- toPrettyJson $cfg -}}
{{- end -}}

{{/* Pod termination grace: above the preStop sleep plus the drain. */}}
{{- define "fetchd.terminationGracePeriodSeconds" -}}
{{- $needed := add (int .Values.preStopSleepSeconds) (int .Values.drainSeconds) -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- if eq $grace 0 -}}
{{- add $needed 10 -}}
{{- else if le $grace (int $needed) -}}
{{- fail (printf "terminationGracePeriodSeconds: must be above preStopSleepSeconds + drainSeconds (%d), got %d" (int $needed) $grace) -}}
{{- else -}}
{{- $grace -}}
{{- end -}}
{{- end -}}
