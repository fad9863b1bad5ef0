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
{{- if eq .Values.limiter.mode "redis" -}}
{{- $_ := set $cfg "limiter" (include "fetchd.limiterConfig" . | fromJson) -}}
{{- end -}}
{{- toPrettyJson $cfg -}}
{{- end -}}

{{/*
The cluster limiter (fetch.v1.Limiter) from .Values.limiter, as JSON; with
limiter.mode redis only. replica_id is left out: fetchd takes POD_NAME,
which the Deployment sets.
*/}}
{{- define "fetchd.limiterConfig" -}}
{{- include "fetchd.limiterCheck" . -}}
{{- $l := .Values.limiter -}}
{{- $redis := dict "address" (include "fetchd.redisAddress" .) -}}
{{- if $l.redis.existingSecret -}}
{{- $_ := set $redis "passwordFile" (printf "%s/%s" (include "fetchd.redisPasswordDir" .) (include "fetchd.redisPasswordFile" .)) -}}
{{- end -}}
{{- range $key := list "connectTimeout" "commandTimeout" "keyPrefix" -}}
{{- with get $l.redis $key -}}
{{- $_ := set $redis $key . -}}
{{- end -}}
{{- end -}}
{{- $limiter := dict "mode" "REDIS" "redis" $redis "expectedReplicas" (int (include "fetchd.expectedReplicas" .)) "onRedisFailure" (upper $l.onRedisFailure) -}}
{{- range $key := list "leaseTtl" "syncInterval" "rateHorizon" "idleRelease" -}}
{{- with get $l $key -}}
{{- $_ := set $limiter $key . -}}
{{- end -}}
{{- end -}}
{{- toJson $limiter -}}
{{- end -}}

{{/* Fails on limiter values that cannot work together. */}}
{{- define "fetchd.limiterCheck" -}}
{{- $l := .Values.limiter -}}
{{- if $l.bundledRedis.enabled -}}
{{- if ne $l.mode "redis" -}}
{{- fail "limiter.bundledRedis.enabled: needs limiter.mode=redis" -}}
{{- end -}}
{{- if $l.redis.address -}}
{{- fail "limiter.redis.address: leave it empty with limiter.bundledRedis.enabled (fetchd then uses the bundled Redis)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Whether the chart runs its own Redis: limiter.bundledRedis.enabled, or
limiter.mode=redis without limiter.redis.address (so that mode redis alone
works; give an address for an external Redis). "true" or empty. */}}
{{- define "fetchd.bundledRedis" -}}
{{- $l := .Values.limiter -}}
{{- if or $l.bundledRedis.enabled (and (eq $l.mode "redis") (not $l.redis.address)) -}}
true
{{- end -}}
{{- end -}}

{{/* Replicas the degraded shares divide by (limiter.expectedReplicas). */}}
{{- define "fetchd.expectedReplicas" -}}
{{- if gt (int .Values.limiter.expectedReplicas) 0 -}}
{{- int .Values.limiter.expectedReplicas -}}
{{- else if .Values.autoscaling.enabled -}}
{{- int .Values.autoscaling.maxReplicas -}}
{{- else -}}
{{- int .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/* The bundled Redis (limiter.bundledRedis): name and labels. Its own
app.kubernetes.io/name, so fetchd's selectors never match its pods. */}}
{{- define "fetchd.redisFullname" -}}
{{- printf "%s-redis" (include "fetchd.fullname" . | trunc 57 | trimSuffix "-") -}}
{{- end -}}

{{- define "fetchd.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-redis" (include "fetchd.name" . | trunc 57 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fetchd.redisLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fetchd.redisSelectorLabels" . }}
app.kubernetes.io/component: limiter-redis
app.kubernetes.io/part-of: {{ include "fetchd.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The Redis fetchd's limiter talks to: the bundled one, or redis.address. */}}
{{- define "fetchd.redisAddress" -}}
{{- if include "fetchd.bundledRedis" . -}}
{{- printf "%s:%d" (include "fetchd.redisFullname" .) (int .Values.limiter.bundledRedis.port) -}}
{{- else -}}
{{- .Values.limiter.redis.address -}}
{{- end -}}
{{- end -}}

{{/* Where the Redis password Secret is mounted in fetchd's pods. */}}
{{- define "fetchd.redisPasswordDir" -}}/etc/fetchd-redis{{- end -}}
{{- define "fetchd.redisPasswordFile" -}}password{{- end -}}

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
