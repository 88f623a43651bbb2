// Chatzuri's documented webhook receiver (seed 001), as a runnable Express
// app. It verifies x-chatzuri-signature over JSON.stringify of the parsed
// body, not over the bytes it received. nodereceiver.Chatzuri runs it; it needs
// express on NODE_PATH and the secret in SECRET_KEY, and prints its port.
'use strict'

const crypto = require('crypto')
const express = require('express')

const app = express()
app.use(express.json())

app.all('/webhook', (req, res) => {
  if (req.method === 'POST') {
    const { SECRET_KEY } = process.env

    const receivedJson = req.body
    const rawBody = Buffer.from(JSON.stringify(receivedJson))
    const bodySignature = sha1(rawBody, SECRET_KEY)

    if (bodySignature !== req.headers['x-chatzuri-signature']) {
      return res.status(400).json({ message: "Signature didn't match" })
    }

    res.status(200).json({ status: 'accepted' })
  } else {
    res.setHeader('Allow', 'POST')
    res.status(405).end('Method Not Allowed')
  }
})

// Not in the documentation: answers with the bytes the receiver signs, so
// that tests can compare JSStringify with Node byte for byte.
app.post('/stringify', (req, res) => {
  res.type('application/json').send(JSON.stringify(req.body))
})

function sha1 (data, secret) {
  return crypto.createHmac('sha1', secret).update(data).digest('hex')
}

const server = app.listen(0, '127.0.0.1', () => {
  console.log(server.address().port)
})
