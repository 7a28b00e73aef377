{{/* Names and labels shared by every template. */}}
{{- define "icthp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "icthp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "icthp.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "icthp.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "icthp.instanceLabels" -}}
app.kubernetes.io/name: {{ include "icthp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The icthp pods; the release's Redis pods carry component "redis" instead. */}}
{{- define "icthp.selectorLabels" -}}
{{ include "icthp.instanceLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "icthp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "icthp.instanceLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The image: the CUDA tag when the GPU is enabled and no tag is set. */}}
{{- define "icthp.image" -}}
{{- $tag := .Values.image.tag -}}
{{- if not $tag -}}{{- $tag = ternary .Values.image.gpuTag .Values.image.cpuTag .Values.gpu.enabled -}}{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* The Redis URL icthp gets: the release's own Redis, an external one, or none. */}}
{{- define "icthp.redisURL" -}}
{{- if .Values.redis.url -}}
{{- .Values.redis.url -}}
{{- else if .Values.redis.standalone.enabled -}}
{{- printf "redis://%s-redis:6379/0" (include "icthp.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "icthp.redisEnabled" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret .Values.redis.standalone.enabled -}}true{{- end -}}
{{- end -}}

{{/* Where the models volume comes from. */}}
{{- define "icthp.modelsClaim" -}}
{{- if .Values.models.volume.existingClaim -}}
{{- .Values.models.volume.existingClaim -}}
{{- else if .Values.models.volume.create -}}
{{- printf "%s-models" (include "icthp.fullname" .) -}}
{{- end -}}
{{- end -}}
