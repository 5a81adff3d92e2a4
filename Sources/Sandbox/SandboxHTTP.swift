import FAL
import Foundation
import JSON
import Hummingbird

/// Response helpers shared by the Sandbox's two stand-ins.
enum SandboxHTTP {
    static func json(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func json(_ status: Int, _ value: JSONValue) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: value.jsonBytes)))
    }
}

extension SandboxTelegram.Answer {
    /// As Hummingbird's response, for the routes on the Sandbox's main port.
    var response: Response {
        Response(status: .init(code: status), headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
