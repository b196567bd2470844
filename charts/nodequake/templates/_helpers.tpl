{{/* Names. */}}
{{- define "nodequake.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nodequake.fullname" -}}
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

{{- define "nodequake.agent.fullname" -}}
{{- printf "%s-agent" (include "nodequake.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nodequake.controller.fullname" -}}
{{- printf "%s-controller" (include "nodequake.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nodequake.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "nodequake.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nodequake
{{- end -}}

{{- define "nodequake.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nodequake.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nodequake.agent.selectorLabels" -}}
{{ include "nodequake.selectorLabels" . }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "nodequake.controller.selectorLabels" -}}
{{ include "nodequake.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* Images: registry + repository + (tag or appVersion). */}}
{{- define "nodequake.image" -}}
{{- $root := index . 0 -}}
{{- $repo := index . 1 -}}
{{- printf "%s%s:%s" $root.Values.image.registry $repo (default $root.Chart.AppVersion $root.Values.image.tag) -}}
{{- end -}}

{{/* Secrets, whichever way they are provided. */}}
{{- define "nodequake.agent.tlsSecret" -}}
{{- if eq .Values.tls.mode "existingSecret" -}}
{{- required "tls.existingSecret.agent is required with tls.mode=existingSecret" .Values.tls.existingSecret.agent -}}
{{- else -}}
{{- printf "%s-tls" (include "nodequake.agent.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "nodequake.controller.tlsSecret" -}}
{{- if eq .Values.tls.mode "existingSecret" -}}
{{- required "tls.existingSecret.controller is required with tls.mode=existingSecret" .Values.tls.existingSecret.controller -}}
{{- else -}}
{{- printf "%s-tls" (include "nodequake.controller.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "nodequake.killSwitch.secret" -}}
{{- default (printf "%s-killswitch" (include "nodequake.fullname" .)) .Values.killSwitch.existingSecret -}}
{{- end -}}

{{- define "nodequake.apiToken.secret" -}}
{{- printf "%s-admin-token" (include "nodequake.fullname" .) -}}
{{- end -}}

{{/* The agents' headless Service as the controller dials it (name:port). */}}
{{- define "nodequake.agent.discovery" -}}
{{- printf "%s.%s.svc:%d" (include "nodequake.agent.fullname" .) .Release.Namespace (int .Values.agent.ports.grpc) -}}
{{- end -}}

{{/*
"auto" switches: true when the value is true, or "auto" and the cluster
serves the API (`helm template` without --api-versions has none of the
monitoring CRDs, so auto renders nothing there).
*/}}
{{- define "nodequake.enabled" -}}
{{- $v := index . 0 -}}
{{- $api := index . 1 -}}
{{- $root := index . 2 -}}
{{- if or (eq (toString $v) "true") (and (eq (toString $v) "auto") ($root.Capabilities.APIVersions.Has $api)) -}}
true
{{- end -}}
{{- end -}}
