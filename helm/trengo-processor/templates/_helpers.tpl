{{/* Chart name, overridable. */}}
{{- define "trengo-processor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: release name + chart name unless the release already holds it. */}}
{{- define "trengo-processor.fullname" -}}
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

{{/* Labels every resource carries. */}}
{{- define "trengo-processor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "trengo-processor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "trengo-processor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trengo-processor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the online-check hook pod: not the Deployment's selector labels. */}}
{{- define "trengo-processor.onlineCheckSelectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: online-check
{{- end }}

{{- define "trengo-processor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trengo-processor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the API token and SASL credentials: the operator's or the chart's. */}}
{{- define "trengo-processor.secretName" -}}
{{- default (include "trengo-processor.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{/* repository:tag, or repository:tag@digest when a digest pins the image. */}}
{{- define "trengo-processor.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{- define "trengo-processor.configDir" -}}/etc/trengo-processor{{- end }}
{{- define "trengo-processor.tokenDir" -}}/var/run/secrets/trengo-processor{{- end }}

{{/* config.yaml: the values' config plus the path of the mounted token file. */}}
{{- define "trengo-processor.configYaml" -}}
{{- $config := deepCopy .Values.config }}
{{- $trengo := get $config "trengo" | default dict }}
{{- $_ := set $trengo "api_token_file" (printf "%s/api-token" (include "trengo-processor.tokenDir" .)) }}
{{- $_ = set $config "trengo" $trengo }}
{{- if include "trengo-processor.transformationMounted" . }}
{{- $transformation := get $config "transformation" | default dict }}
{{- if or $transformation.javascript $transformation.python }}
{{- fail "transformationFile supplies the transformation: leave config.transformation.javascript and python null" }}
{{- end }}
{{- $_ = set $transformation .Values.transformationFile.language (include "trengo-processor.transformationPath" .) }}
{{- $_ = set $config "transformation" $transformation }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* The transformation file (transformationFile): mounted when it has a source or a ConfigMap. */}}
{{- define "trengo-processor.transformationMounted" -}}
{{- $file := .Values.transformationFile }}
{{- if and $file.source $file.existingConfigMap }}
{{- fail "transformationFile: set source or existingConfigMap, not both" }}
{{- end }}
{{- if or $file.source $file.existingConfigMap }}true{{- end }}
{{- end }}
{{- define "trengo-processor.transformationDir" -}}/etc/trengo-processor-transformation{{- end }}
{{- define "trengo-processor.transformationFileName" -}}
transformation.{{ eq .Values.transformationFile.language "python" | ternary "py" "js" }}
{{- end }}
{{- define "trengo-processor.transformationPath" -}}
{{ include "trengo-processor.transformationDir" . }}/{{ include "trengo-processor.transformationFileName" . }}
{{- end }}

{{/* shutdown_timeout_seconds as the processor reads it (its default when unset). */}}
{{- define "trengo-processor.shutdownTimeoutSeconds" -}}
{{- $delivery := .Values.config.delivery | default dict }}
{{- $timeout := 25.0 }}
{{- if hasKey $delivery "shutdown_timeout_seconds" }}
{{- $timeout = $delivery.shutdown_timeout_seconds }}
{{- end }}
{{- int (ceil $timeout) }}
{{- end }}

{{/* The metrics/health port (config.server.port). */}}
{{- define "trengo-processor.port" -}}
{{- $server := .Values.config.server | default dict }}
{{- $server.port | default 9400 }}
{{- end }}

{{/*
Most pods KEDA may run: the smallest of autoscaling.maxReplicas, the partition count (extra
consumers idle) and the Trengo budget ceil(requests_per_minute / perPodRequestsPerMinute) (extra
pods only queue on the shared rate limit).
*/}}
{{- define "trengo-processor.maxReplicas" -}}
{{- $partitions := required "kafkaTopicPartitions is required when autoscaling.enabled (the topic's partition count caps the replicas)" .Values.kafkaTopicPartitions }}
{{- $trengo := .Values.config.trengo | default dict }}
{{- $budget := $trengo.requests_per_minute | default 120 }}
{{- $budgetPods := int (ceil (divf $budget .Values.autoscaling.perPodRequestsPerMinute)) }}
{{- min .Values.autoscaling.maxReplicas $partitions $budgetPods }}
{{- end }}

{{/* KEDA's name for the SASL mechanism in config.kafka.settings (none without SASL). */}}
{{- define "trengo-processor.kedaSasl" -}}
{{- $settings := (.Values.config.kafka | default dict).settings | default dict }}
{{- $mechanism := get $settings "sasl.mechanism" | default (get $settings "sasl.mechanisms") | default "PLAIN" }}
{{- $names := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" "OAUTHBEARER" "oauthbearer" "GSSAPI" "gssapi" }}
{{- if .Values.auth.kafkaSasl.enabled }}
{{- required (printf "sasl.mechanism %s has no KEDA equivalent" $mechanism) (get $names (upper $mechanism)) }}
{{- else }}
{{- "none" }}
{{- end }}
{{- end }}

{{/* "enable" when config.kafka.settings asks for TLS (SSL or SASL_SSL), else "disable". */}}
{{- define "trengo-processor.kedaTls" -}}
{{- $settings := (.Values.config.kafka | default dict).settings | default dict }}
{{- $protocol := get $settings "security.protocol" | default "PLAINTEXT" | upper }}
{{- ternary "enable" "disable" (hasSuffix "SSL" $protocol) }}
{{- end }}
