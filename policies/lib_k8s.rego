# Helpers shared by the built-in policies: where a Kubernetes object keeps its pod template.
package lib.k8s

import rego.v1

workload_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}

pod_spec := input.spec if input.kind == "Pod"

pod_spec := input.spec.template.spec if workload_kinds[input.kind]

pod_spec := input.spec.jobTemplate.spec.template.spec if input.kind == "CronJob"

# Every container of the pod spec, with the field it sits in.
containers contains [field, container] if {
	some field in ["containers", "initContainers", "ephemeralContainers"]
	some container in pod_spec[field]
}

is_workload if pod_spec

name := object.get(input, ["metadata", "name"], "<unnamed>")
