# The two commands: `make dev` runs the product locally, `make test` passes every test.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test install site browser unit bench clean package deploy localstack publish load status lottery reset reset-full logs
STAGE ?= dev
DROP ?= demo
REGION ?= us-east-1
STACK ?= product-drop-$(STAGE)
DROPS := $(BIN)/drops

$(STAMP): requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# The storefront: npm ci (exact lockfile versions), then esbuild into frontend/dist.
FRONT_STAMP := frontend/node_modules/.installed
FRONT_SRC := $(wildcard frontend/src/*) frontend/build.mjs frontend/package.json
$(FRONT_STAMP): frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

frontend/dist/index.html: $(FRONT_STAMP) $(FRONT_SRC)
	cd frontend && npm run --silent build

site: frontend/dist/index.html

# Debian's chromium for the browser tests (Playwright cannot download its own browser here).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null

browser: $(CHROMIUM)

dev: install site
	$(BIN)/python -m devstack.dev

test: install site browser
	cd frontend && npm test --silent
	$(BIN)/python -m pytest -q

bench: install
	for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist .dev test-output build

# -- infra (docs/DEPLOY.md) --------------------------------------------------------------
package: install
	$(BIN)/python infra/sync_asl.py
	rm -rf build && mkdir -p build
	AWS_DEFAULT_REGION=$(REGION) $(BIN)/chalice package --stage $(STAGE) --template-format yaml \
	  --merge-template infra/template.yaml build
	mkdir -p build/sse && cp -r sse chalicelib build/sse/ && cp infra/sse/run.sh build/sse/
	$(BIN)/pip install -q --disable-pip-version-check -r infra/sse/requirements.txt -t build/sse \
	  --platform manylinux2014_x86_64 --implementation cp --python-version 3.11 --only-binary=:all:
	$(BIN)/cfn-lint build/sam.yaml
	@echo "build/sam.yaml + build/deployment.zip + build/sse/ ready"

deploy: package
	test -n "$(ARTIFACT_BUCKET)" || { echo "set ARTIFACT_BUCKET=<an S3 bucket in $(REGION)>"; exit 2; }
	aws cloudformation package --region $(REGION) --template-file build/sam.yaml \
	  --s3-bucket $(ARTIFACT_BUCKET) --output-template-file build/packaged.yaml
	aws cloudformation deploy --region $(REGION) --stack-name $(STACK) --template-file build/packaged.yaml \
	  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --parameter-overrides Stage=$(STAGE) $(PARAMS)
	$(MAKE) --no-print-directory publish AWS="aws --region $(REGION)"

localstack: package
	docker compose up -d --wait localstack
	awslocal s3 mb s3://drops-artifacts 2>/dev/null || true
	awslocal cloudformation package --template-file build/sam.yaml --s3-bucket drops-artifacts \
	  --output-template-file build/packaged.yaml
	awslocal cloudformation deploy --stack-name $(STACK) --template-file build/packaged.yaml \
	  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --parameter-overrides Stage=$(STAGE)
	$(MAKE) --no-print-directory publish AWS=awslocal

# The storefront into the stack's private site bucket (aws s3 sync sets Content-Type per file).
AWS ?= aws
publish:
	test -f frontend/dist/index.html || (cd frontend && npm ci && npm run build)
	bucket=$$($(AWS) cloudformation describe-stacks --stack-name $(STACK) --output text \
	  --query "Stacks[0].Outputs[?OutputKey=='SiteBucketName'].OutputValue") && \
	$(AWS) s3 sync frontend/dist "s3://$$bucket/" --delete && \
	$(AWS) cloudformation describe-stacks --stack-name $(STACK) --output table --query "Stacks[0].Outputs"

# Locust (bench/locust/locustfile.py): LOAD_SCENARIO=spike|breakpoint|sse|purchase|soak, against make dev
# (start it with POW_DIFFICULTY=8 RATE_LIMIT_SESSION_IP=0 RATE_LIMIT_CHALLENGE_IP=0 RATE_LIMIT_REGISTER_IP=0)
# or any deployed origin (DROPS_ENDPOINT, OPERATOR_KEY).
load: install
	LOAD_SCENARIO=$${LOAD_SCENARIO:-spike} LOAD_USERS=$${LOAD_USERS:-200} $(BIN)/locust -f bench/locust/locustfile.py \
	  --headless -u $${LOAD_USERS:-200} -r $${LOAD_RATE:-50} -t $${LOAD_TIME:-60s} --only-summary \
	  --host $${DROPS_ENDPOINT:-http://127.0.0.1:8000}

# -- operator verbs (thin wrappers over the drops CLI; DROP=demo by default) ------------
status: install
	$(DROPS) status $(DROP)

lottery: install
	$(DROPS) lottery $(DROP)

reset: install
	$(DROPS) reset $(DROP) --yes

reset-full: install
	$(DROPS) reset-all --yes

logs:
	tail -n 50 -F .dev/gateway.log .dev/moto.log
