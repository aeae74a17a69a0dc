"""Local development stack: moto server with in-process Lambdas and Step Functions."""
