namespace VideoMatch.Tests;

/// <summary>gRPC requests no gRPC library would send: a body of raw bytes, framed by hand, over HTTP/2.</summary>
internal static class RawGrpc
{
    /// <summary>One gRPC length-prefixed message: flag, big-endian length, bytes.</summary>
    public static byte[] Framed(byte flag, byte[] message) =>
        [flag, (byte)(message.Length >> 24), (byte)(message.Length >> 16), (byte)(message.Length >> 8), (byte)message.Length, .. message];

    /// <summary>A POST of <paramref name="body"/> to a VideoMatcher method, as HTTP/2 only (h2c with prior knowledge on http://).</summary>
    public static HttpRequestMessage Request(string address, string method, byte[] body, string? encoding)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"{address}/videomatch.v1.VideoMatcher/{method}")
        {
            Content = new ByteArrayContent(body),
            Version = System.Net.HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("TE", "trailers");
        if (encoding is not null)
        {
            request.Headers.TryAddWithoutValidation("grpc-encoding", encoding);
        }

        return request;
    }
}
