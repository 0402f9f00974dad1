/* Not built into letta-bridge: /docs/ loads swagger-ui-bundle.js and swagger-ui-standalone-preset.js only (vendor/README.md). */
