package api

var openAPIDocument = []byte(`{"openapi":"3.1.0","info":{"title":"Agora","version":"1"},"paths":{}}`)
