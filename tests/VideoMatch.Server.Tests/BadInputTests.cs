using System.Numerics;
using Google.Protobuf;
using Grpc.Core;
using SkiaSharp;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

public sealed class BadInputTests(ServerFactory server) : IClassFixture<ServerFactory>
{
    private static readonly SyntheticVideo Video = new(seed: 31, width: 160, height: 120);

    public static TheoryData<string, Image, string> BadImages()
    {
        var good = Video.Raw(Vector2.Zero).Raw;
        var data = new TheoryData<string, Image, string>
        {
            { "truncated pixels", Raw(good.Format, 160, 120, 0, good.Data.Span[..^1].ToArray()), "truncated" },
            { "pixels for another size", Raw(good.Format, 161, 120, 0, good.Data.ToByteArray()), "truncated" },
            { "zero width", Raw(PixelFormat.Gray8, 0, 120, 0, []), "empty" },
            { "huge size", Raw(PixelFormat.Gray8, 70_000, 1, 0, new byte[70_000]), "limit" },
            { "unknown format", Raw((PixelFormat)99, 160, 120, 0, good.Data.ToByteArray()), "not supported" },
            { "unspecified format", Raw(PixelFormat.Unspecified, 160, 120, 0, good.Data.ToByteArray()), "not supported" },
            { "stride below width", Raw(good.Format, 160, 120, 100, good.Data.ToByteArray()), "stride" },
            { "corrupt JPEG", Encoded(ImageEncoding.Jpeg, [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 1, 2, 3]), "JPEG" },
            { "PNG declared JPEG", Encoded(ImageEncoding.Jpeg, Png(16, 16)), "declared JPEG" },
            { "empty PNG", Encoded(ImageEncoding.Png, []), "empty" },
            { "unknown encoding", Encoded((ImageEncoding)42, Png(16, 16)), "not supported" },
            { "no image", new Image(), "no image" },
            { "65535 pixels wide", Raw(PixelFormat.Gray8, 65535, 1, 0, new byte[65535]), "limit of 8192" },
            // The value the client sent, not one clamped to 2^31-1.
            { "row stride 2^32-1", Raw(PixelFormat.Gray8, 16, 16, uint.MaxValue, new byte[256]), "raw.row_stride = 4294967295 cannot" },
            { "height 2^31", Raw(PixelFormat.Gray8, 16, 2147483648, 0, new byte[256]), "raw.height = 2147483648 cannot" },
            { "JPEG header claiming 60000×60000", Encoded(ImageEncoding.Jpeg, LyingJpeg(60000, 60000)), "over the server's limit" },
        };
        return data;
    }

    [Theory]
    [MemberData(nameof(BadImages))]
    public async Task MatchStream_BadFrame_AnsweredInStreamAndStreamGoesOn(string _, Image bad, string reason)
    {
        var frames = new[]
        {
            Video.Frame(1, Vector2.Zero),
            new Frame { Sequence = 2, Image = bad },
            Video.Frame(3, new Vector2(2, 1)),
        };

        var responses = await Streams.RunAsync(server.Client, new StreamConfig(), frames);

        Assert.Equal(3, responses.Count);
        Assert.Equal(FrameStatusCode.FirstFrame, responses[0].Status.Code);
        Assert.Equal(FrameStatusCode.Invalid, responses[1].Status.Code);
        Assert.Equal(2UL, responses[1].Status.Sequence);
        Assert.Contains(reason, responses[1].Status.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal((1UL, 3UL), (responses[2].Pair.Sequence0, responses[2].Pair.Sequence1));
        MatchAssertions.RecoversMotion(responses[2].Pair.Matches, new Vector2(-2, -1), minimum: 50);
    }

    [Theory]
    [MemberData(nameof(BadImages))]
    public async Task MatchPair_BadImage_InvalidArgumentNamingTheImage(string _, Image bad, string reason)
    {
        var request = new MatchPairRequest { Image0 = Video.Raw(Vector2.Zero), Image1 = bad };

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.MatchPairAsync(request).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.StartsWith("image1: ", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(reason, error.Status.Detail, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task MatchStream_SequenceGoesBackwards_FrameRejectedStreamGoesOn()
    {
        var frames = new[] { Video.Frame(5, Vector2.Zero), Video.Frame(4, Vector2.One), Video.Frame(5, Vector2.One), Video.Frame(6, Vector2.One) };

        var responses = await Streams.RunAsync(server.Client, new StreamConfig(), frames);

        Assert.Equal([FrameStatusCode.FirstFrame, FrameStatusCode.Invalid, FrameStatusCode.Invalid], responses.Take(3).Select(r => r.Status.Code));
        Assert.Contains("does not follow 5", responses[1].Status.Message, StringComparison.Ordinal);
        Assert.Equal((5UL, 6UL), (responses[3].Pair.Sequence0, responses[3].Pair.Sequence1));
    }

    [Fact]
    public async Task MatchStream_FrameBeforeConfig_InvalidArgument()
    {
        using var call = server.Client.MatchStream();
        await call.RequestStream.WriteAsync(new StreamRequest { Frame = Video.Frame(7, Vector2.Zero) });

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("frame 7", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("StreamConfig", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MatchStream_SecondConfig_AnswersEarlierFramesThenInvalidArgument()
    {
        using var call = server.Client.MatchStream();
        await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
        await call.RequestStream.WriteAsync(new StreamRequest { Frame = Video.Frame(1, Vector2.Zero) });
        await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });

        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(FrameStatusCode.FirstFrame, call.ResponseStream.Current.Status.Code);
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("second StreamConfig", error.Status.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(-0.1f)]
    [InlineData(1f)]
    [InlineData(7f)]
    public async Task MatchStream_ThresholdOutOfRange_InvalidArgument(float threshold)
    {
        using var call = server.Client.MatchStream();
        await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig { MatchThreshold = threshold } });

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("match_threshold", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MatchStream_AfterManyBadInputs_ServerStillMatches()
    {
        foreach (var row in BadImages())
        {
            await Streams.RunAsync(server.Client, new StreamConfig(), [new Frame { Sequence = 1, Image = (Image)row[1] }]);
        }

        var responses = await Streams.RunAsync(server.Client, new StreamConfig(), [Video.Frame(1, Vector2.Zero), Video.Frame(2, new Vector2(-3, 2))]);

        MatchAssertions.RecoversMotion(responses[1].Pair.Matches, new Vector2(3, -2), minimum: 50);
    }

    [Fact]
    public async Task MatchStream_OddSizesAndResolutionChanges_AreAcceptedAndMappedToEachFrame()
    {
        var big = new SyntheticVideo(seed: 33, width: 400, height: 300);
        var frames = new[]
        {
            new Frame { Sequence = 1, Image = Raw(PixelFormat.Gray8, 1, 1, 0, [128]) },
            new Frame { Sequence = 2, Image = Raw(PixelFormat.Rgb24, 3, 7, 0, new byte[3 * 7 * 3]) },
            big.Frame(3, Vector2.Zero),
            Video.Frame(4, Vector2.Zero),
            big.Frame(5, Vector2.One),
        };

        var responses = await Streams.RunAsync(server.Client, new StreamConfig(), frames);

        Assert.Equal(FrameStatusCode.FirstFrame, responses[0].Status.Code);
        Assert.All(responses.Skip(1), r => Assert.NotNull(r.Pair));
        // Each frame's points stay inside that frame's own size.
        var mixed = responses[3].Pair.Matches;
        for (var i = 0; i < mixed.Count; i++)
        {
            Assert.InRange(mixed.Keypoints0[2 * i], -0.5f, 399.5f);
            Assert.InRange(mixed.Keypoints1[2 * i], -0.5f, 159.5f);
        }
    }

    [Fact]
    public async Task MatchPair_MessageOverTheLimit_ResourceExhaustedServerGoesOn()
    {
        using var small = new ServerFactory(new Dictionary<string, string?> { ["Limits:MaxMessageBytes"] = "65536" });
        var large = new SyntheticVideo(seed: 2, width: 200, height: 200);

        var error = await Assert.ThrowsAsync<RpcException>(() =>
            small.Client.MatchPairAsync(new MatchPairRequest { Image0 = large.Raw(Vector2.Zero), Image1 = large.Raw(Vector2.One) }).ResponseAsync);
        var tiny = new SyntheticVideo(seed: 2, width: 96, height: 64);
        var after = await small.Client.MatchPairAsync(new MatchPairRequest { Image0 = tiny.Raw(Vector2.Zero), Image1 = tiny.Raw(Vector2.One) });

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.NotNull(after.Matches);
    }

    private static readonly byte[] Garbage = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x01, 0x02];

    [Fact]
    public async Task MatchPair_GarbageInsteadOfProtobuf_InvalidArgumentForThatCallOnly()
    {
        // gRPC parses a unary request before any service code runs, with VideoMatcherMethods' checked marshaller.
        var method = new Method<byte[], byte[]>(MethodType.Unary, "videomatch.v1.VideoMatcher", "MatchPair", RawBytes, RawBytes);

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Channel.CreateCallInvoker().AsyncUnaryCall(method, null, new CallOptions(), Garbage).ResponseAsync);
        var after = await server.Client.GetModelInfoAsync(new GetModelInfoRequest());

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("not a valid videomatch.v1.MatchPairRequest", error.Status.Detail, StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(after.ModelName));
    }

    [Fact]
    public async Task MatchStream_GarbageAfterAValidFrame_AnswersTheFrameThenInvalidArgument()
    {
        var method = new Method<byte[], byte[]>(MethodType.DuplexStreaming, "videomatch.v1.VideoMatcher", "MatchStream", RawBytes, RawBytes);
        using var call = server.Channel.CreateCallInvoker().AsyncDuplexStreamingCall(method, null, new CallOptions());

        await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() }.ToByteArray());
        await call.RequestStream.WriteAsync(new StreamRequest { Frame = Video.Frame(1, Vector2.Zero) }.ToByteArray());
        await call.RequestStream.WriteAsync(Garbage);
        Assert.True(await call.ResponseStream.MoveNext());
        var first = StreamResponse.Parser.ParseFrom(call.ResponseStream.Current);
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());

        Assert.Equal(FrameStatusCode.FirstFrame, first.Status.Code);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("message 3 of the stream is not a valid StreamRequest", error.Status.Detail, StringComparison.OrdinalIgnoreCase);
    }

    private static readonly Marshaller<byte[]> RawBytes = Marshallers.Create(static b => b, static b => b);

    /// <summary>A real 16×16 JPEG whose frame header (SOF0) claims another size.</summary>
    private static byte[] LyingJpeg(ushort width, ushort height)
    {
        using var bitmap = new SKBitmap(16, 16);
        bitmap.Erase(SKColors.Gray);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, 90);
        var jpeg = data.ToArray();
        for (var i = 0; i + 8 < jpeg.Length; i++)
        {
            if (jpeg[i] == 0xFF && jpeg[i + 1] is 0xC0 or 0xC2)
            {
                // FF C0, length (2), precision (1), height (2), width (2).
                jpeg[i + 5] = (byte)(height >> 8);
                jpeg[i + 6] = (byte)height;
                jpeg[i + 7] = (byte)(width >> 8);
                jpeg[i + 8] = (byte)width;
                return jpeg;
            }
        }

        throw new InvalidOperationException("No SOF marker in the encoded JPEG.");
    }

    private static Image Raw(PixelFormat format, uint width, uint height, uint stride, byte[] data) =>
        new() { Raw = new RawImage { Format = format, Width = width, Height = height, RowStride = stride, Data = ByteString.CopyFrom(data) } };

    private static Image Encoded(ImageEncoding encoding, byte[] data) =>
        new() { Encoded = new EncodedImage { Encoding = encoding, Data = ByteString.CopyFrom(data) } };

    internal static byte[] Png(int width, int height)
    {
        using var bitmap = new SKBitmap(width, height);
        bitmap.Erase(SKColors.Gray);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Bodies no gRPC library would send: each gets a status a user can act on, never UNKNOWN.</summary>
    public static TheoryData<string, string, byte[], string?, StatusCode, string> GarbageBodies() => new()
    {
        { "unary: not a MatchPairRequest", "MatchPair", RawGrpc.Framed(0, [0xFF, 0xFF, 0xFF, 0xFF]), null, StatusCode.InvalidArgument, "not a valid videomatch.v1.MatchPairRequest" },
        { "stream: first message not a StreamRequest", "MatchStream", RawGrpc.Framed(0, [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), null, StatusCode.InvalidArgument, "Message 1 of the stream is not a valid StreamRequest" },
        { "unary: compressed flag 2", "MatchPair", RawGrpc.Framed(2, [0x08, 0x01]), null, StatusCode.InvalidArgument, "compressed flag 2" },
        { "stream: compressed flag 0xFF", "MatchStream", RawGrpc.Framed(0xFF, [0x08, 0x01]), null, StatusCode.InvalidArgument, "Message 1 of the stream is not a valid gRPC message" },
        { "stream: length 0xFFFFFFFF", "MatchStream", [0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3], null, StatusCode.ResourceExhausted, "Limits:MaxMessageBytes" },
        { "unary: length 0xFFFFFFFF", "MatchPair", [0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3], null, StatusCode.ResourceExhausted, "4294967295 bytes" },
        { "unary: compressed without grpc-encoding", "MatchPair", RawGrpc.Framed(1, [0x08, 0x01]), null, StatusCode.InvalidArgument, "no grpc-encoding" },
        { "stream: compressed without grpc-encoding", "MatchStream", RawGrpc.Framed(1, [0x08, 0x01]), null, StatusCode.InvalidArgument, "Message 1 of the stream is not a valid gRPC message" },
        { "unary: gzip flag on a body that is not gzip", "MatchPair", RawGrpc.Framed(1, [0x08, 0x01, 0x02, 0x03]), "gzip", StatusCode.InvalidArgument, "not valid gzip" },
        { "stream: gzip flag on a body that is not gzip", "MatchStream", RawGrpc.Framed(1, [0x08, 0x01, 0x02, 0x03]), "gzip", StatusCode.InvalidArgument, "not valid gzip" },
    };

    [Theory]
    [MemberData(nameof(GarbageBodies))]
    public async Task Garbage_gRPCBody_ClearStatusNotUnknown(string _, string method, byte[] body, string? encoding, StatusCode expected, string message)
    {
        using var client = server.CreateDefaultClient();
        using var request = RawGrpc.Request("", method, body, encoding);
        using var response = await client.SendAsync(request).WaitAsync(Limits.Call);
        await response.Content.ReadAsByteArrayAsync().WaitAsync(Limits.Call);
        string? Header(string name) => response.Headers.TryGetValues(name, out var v) || response.TrailingHeaders.TryGetValues(name, out v) ? v.First() : null;

        var status = (StatusCode)int.Parse(Header("grpc-status") ?? "-1", System.Globalization.CultureInfo.InvariantCulture);
        var detail = Uri.UnescapeDataString(Header("grpc-message") ?? "");
        Assert.True(status == expected, $"{status}: {detail}");
        Assert.Contains(message, detail, StringComparison.Ordinal);
    }
}
