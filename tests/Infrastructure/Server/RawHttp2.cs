using System.Net;
using System.Net.Sockets;
using System.Text;

namespace VideoMatch.Tests;

/// <summary>
/// Just enough HTTP/2 (RFC 9113, prior knowledge) to send what HttpClient will not: a request whose body never
/// ends, or an :authority that names another port. Headers go out as HPACK literals (no Huffman coding).
/// </summary>
internal static class RawHttp2
{
    private const byte Data = 0x0;
    private const byte Headers = 0x1;
    private const byte Settings = 0x4;
    private const byte EndStream = 0x1;
    private const byte EndHeaders = 0x4;

    /// <summary>A gRPC POST whose frame announces 16 MB, of which 1 KB is sent; whether it is answered, and the answer ends the stream.</summary>
    public static async Task<(bool Answered, bool EndsStream)> PostWithoutEndAsync(int port, string path, TimeSpan wait)
    {
        using var tcp = await ConnectAsync(port);
        var stream = tcp.GetStream();
        byte[] headers = [.. Header(":method", "POST"), .. Header(":scheme", "http"), .. Header(":path", path),
            .. Header(":authority", $"127.0.0.1:{port}"), .. Header("content-type", "application/grpc"), .. Header("te", "trailers")];
        await WriteFrameAsync(stream, Headers, EndHeaders, 1, headers);
        await WriteFrameAsync(stream, Data, 0, 1, [0, 0x01, 0x00, 0x00, 0x00, .. new byte[1024]]);
        var answer = await ReadResponseHeadersAsync(stream, wait);
        return (answer is not null, answer?.EndsStream ?? false);
    }

    /// <summary>A GET on <paramref name="port"/> whose :authority is <paramref name="authority"/>; the HTTP status, or 0 without an answer.</summary>
    public static async Task<int> GetAsync(int port, string path, string authority, TimeSpan wait)
    {
        using var tcp = await ConnectAsync(port);
        var stream = tcp.GetStream();
        byte[] headers = [.. Header(":method", "GET"), .. Header(":scheme", "http"), .. Header(":path", path), .. Header(":authority", authority)];
        await WriteFrameAsync(stream, Headers, EndHeaders | EndStream, 1, headers);
        var answer = await ReadResponseHeadersAsync(stream, wait);
        // Kestrel sends :status first, as an entry of HPACK's static table (RFC 7541, appendix A).
        return answer?.Block is [var first, ..] ? first switch
        {
            0x88 => 200,
            0x8c => 400,
            0x8d => 404,
            0x8e => 500,
            _ => -1,
        } : 0;
    }

    private static async Task<TcpClient> ConnectAsync(int port)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        await tcp.GetStream().WriteAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());
        await WriteFrameAsync(tcp.GetStream(), Settings, 0, 0, []);
        return tcp;
    }

    private static async Task<(byte[] Block, bool EndsStream)?> ReadResponseHeadersAsync(NetworkStream stream, TimeSpan wait)
    {
        using var timeout = new CancellationTokenSource(wait);
        try
        {
            while (true)
            {
                var head = new byte[9];
                await stream.ReadExactlyAsync(head, timeout.Token);
                var length = (head[0] << 16) | (head[1] << 8) | head[2];
                var (type, flags) = (head[3], head[4]);
                var id = ((head[5] & 0x7F) << 24) | (head[6] << 16) | (head[7] << 8) | head[8];
                var payload = new byte[length];
                await stream.ReadExactlyAsync(payload, timeout.Token);
                if (type == Settings && (flags & 0x1) == 0)
                {
                    await WriteFrameAsync(stream, Settings, 0x1, 0, []); // ACK
                }
                else if (type == Headers && id == 1)
                {
                    return (payload, (flags & EndStream) != 0);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or EndOfStreamException)
        {
            return null;
        }
    }

    /// <summary>HPACK literal header field without indexing, new name (names and values under 127 bytes).</summary>
    private static byte[] Header(string name, string value) =>
        [0x00, (byte)name.Length, .. Encoding.ASCII.GetBytes(name), (byte)value.Length, .. Encoding.ASCII.GetBytes(value)];

    private static async Task WriteFrameAsync(Stream stream, byte type, int flags, int streamId, byte[] payload)
    {
        byte[] head = [(byte)(payload.Length >> 16), (byte)(payload.Length >> 8), (byte)payload.Length, type, (byte)flags,
            (byte)(streamId >> 24), (byte)(streamId >> 16), (byte)(streamId >> 8), (byte)streamId];
        await stream.WriteAsync(head);
        await stream.WriteAsync(payload);
        await stream.FlushAsync();
    }
}
