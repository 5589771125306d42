# Containers declare CPU and memory limits, so one workload cannot starve its neighbours.
package main

import data.lib.k8s
import rego.v1

deny_resource_limits contains msg if {
	some [field, container] in k8s.containers
	field != "ephemeralContainers"
	some resource in ["cpu", "memory"]
	not container.resources.limits[resource]
	msg := sprintf("%s %s: %s %s has no %s limit", [input.kind, k8s.name, field, container.name, resource])
}
