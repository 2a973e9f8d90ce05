"""
The DCRF baseline: a minimal Django site broadcasting Metric changes the way
djangochannelsrestframework documents it (`@model_observer` plus a subscribe action),
over channels-redis's default RedisChannelLayer, served by daphne.
"""
