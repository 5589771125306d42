package main_test

import rego.v1

test_missing_limits_are_denied if {
	c := object.remove(good_container, ["resources"])
	data.main.deny_resource_limits == {
		"Deployment web: containers app has no cpu limit",
		"Deployment web: containers app has no memory limit",
	} with input as deployment(c)
}
