"""Azure Functions (Python v2 model): the Service Bus trigger runs the same handler."""

import azure.functions as func
from orders import process_order

from cloudqueue.serverless import azure_functions

app = func.FunctionApp()
app.service_bus_queue_trigger(
    arg_name="msg", queue_name="orders", connection="SERVICEBUS_CONNECTION"
)(azure_functions(process_order))
