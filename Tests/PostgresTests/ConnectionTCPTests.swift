import Foundation
@testable import Postgres
import TestSupport
import Testing

/// The TCP settings every connection carries, read back from its socket: they are what ends a
/// call on a database that vanished without closing the connection.
@Suite struct ConnectionTCPTests {
    // <netinet/tcp.h>
    static let keepIdle: Int32 = 4, keepInterval: Int32 = 5, keepCount: Int32 = 6, userTimeout: Int32 = 18

    static func option(_ socket: Int32, _ level: Int32, _ name: Int32) -> Int32 {
        var value: Int32 = -1
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(socket, level, name, &value, &length) == 0 ? value : -1
    }

    @Test func connectionsDetectADeadPeer() throws {
        let connection = try LibpqConnection.connect(try PostgresClient.Configuration(connectionString: try TestServices.databaseURL()))
        let socket = connection.socket
        #expect(Self.option(socket, SOL_SOCKET, SO_KEEPALIVE) == 1)
        #expect(Self.option(socket, Int32(IPPROTO_TCP), Self.keepIdle) == 15)
        #expect(Self.option(socket, Int32(IPPROTO_TCP), Self.keepInterval) == 5)
        #expect(Self.option(socket, Int32(IPPROTO_TCP), Self.keepCount) == 3)
        #expect(Self.option(socket, Int32(IPPROTO_TCP), Self.userTimeout) == 15_000)
    }

    @Test func theURLOverridesThem() throws {
        var components = URLComponents(string: try TestServices.databaseURL())!
        components.queryItems = (components.queryItems ?? []) + [URLQueryItem(name: "tcp_user_timeout", value: "2500"), URLQueryItem(name: "keepalives_idle", value: "40")]
        let connection = try LibpqConnection.connect(try PostgresClient.Configuration(connectionString: components.string!))
        #expect(Self.option(connection.socket, Int32(IPPROTO_TCP), Self.userTimeout) == 2_500)
        #expect(Self.option(connection.socket, Int32(IPPROTO_TCP), Self.keepIdle) == 40)
    }
}
