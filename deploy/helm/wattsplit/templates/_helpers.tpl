{{- define "wattsplit.labels" -}}
app.kubernetes.io/part-of: wattsplit
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
{{- define "wattsplit.image" -}}
{{ .img.repository }}:{{ .img.tag }}
{{- end }}
{{- define "wattsplit.fleetEnv" -}}
- { name: WATTSPLIT_KAFKA_BROKERS, value: {{ .Values.kafka.brokers | quote }} }
- { name: WATTSPLIT_KAFKA_CLIENT, value: {{ .Values.kafka.client | quote }} }
- { name: WATTSPLIT_KAFKA_PARTITIONS, value: {{ .Values.kafka.partitions | quote }} }
- { name: WATTSPLIT_KAFKA_REPLICATION_FACTOR, value: {{ .Values.kafka.replicationFactor | quote }} }
- { name: WATTSPLIT_KAFKA_COMPRESSION, value: {{ .Values.kafka.compression | quote }} }
{{- end }}
