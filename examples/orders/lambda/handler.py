"""AWS Lambda entry point: the SQS trigger runs the same handler."""

from orders import process_order

from cloudqueue.serverless import aws_lambda

lambda_handler = aws_lambda(process_order)
