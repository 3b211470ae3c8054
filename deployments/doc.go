// Package deployments holds the tests that check healthscore's deployment
// artifacts with the tools that consume them: the alert rules with promtool
// and a real Prometheus scraping `healthscore run --demo`, the Grafana
// dashboards with grafana-foundation-sdk, the Kubernetes manifests with
// kustomize (krusty) and the official API types, the compose file with
// compose-go and the Dockerfile with BuildKit's parser.
//
// The artifacts themselves are files (Dockerfile, compose/, kubernetes/,
// grafana/, prometheus/); this module exists so that the heavy libraries
// that check them stay out of the service's go.mod. It has no code that
// ships.
package deployments
