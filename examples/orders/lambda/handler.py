"""AWS Lambda entry points: the SQS triggers run the same handlers as the worker."""

from orders import bill_order, process_order, ship_order

from cloudqueue.serverless import aws_lambda

lambda_handler = aws_lambda(process_order)
# The billing and shipping queues are subscribed to the order-events topic with raw
# delivery, so their records are plain SQS records (template.yaml).
bill_handler = aws_lambda(bill_order)
ship_handler = aws_lambda(ship_order)
