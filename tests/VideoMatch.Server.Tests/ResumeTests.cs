using System.Globalization;
using System.Numerics;
using Google.Protobuf;
using Grpc.Core;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;
using VideoMatch.Synthetic;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>
/// A stream that moves to another server part-way (StreamConfig.resume): the answers after the move are those one
/// uninterrupted stream gives for the same frames — pairs, matches, scores, points, keyframes and track ids.
/// </summary>
public sealed class ResumeTests : IClassFixture<ServerFactory>
{
    private static readonly TexturedScene SceneA = new(seed: 41);
    private static readonly TexturedScene SceneB = new(seed: 42);
    private readonly ServerFactory _server;

    public ResumeTests(ServerFactory server) => _server = server;

    [Theory]
    [InlineData(false, 4)]
    [InlineData(false, 1)]
    [InlineData(true, 5)]
    [InlineData(true, 7)]
    public async Task Resume_OnAnotherServer_AnswersAsOneUninterruptedStream(bool keyframes, int moveAfter)
    {
        // A pan with a scene cut at frame 5, so keyframe mode re-keys before and after some of the moves.
        var frames = Enumerable.Range(0, 10)
            .Select(i => new Frame { Sequence = (ulong)(10 + 3 * i), TimestampUs = 1000 * i, Image = Render(i < 5 ? SceneA : SceneB, Pan(2.5f * i, 0.5f * i)) })
            .ToArray();
        var config = new StreamConfig { MatchThreshold = 0.2f, TrackIds = true, Keyframes = keyframes, RekeyMinInliers = keyframes ? 120u : 0u };

        var uninterrupted = await Streams.RunAsync(_server.Client, config, frames);
        var before = await Streams.RunAsync(_server.Client, config, frames.Take(moveAfter));
        var point = new StreamResumePoint(config);
        foreach (var (frame, response) in frames.Take(moveAfter).Zip(before))
        {
            point.Sent(frame);
            point.Answered(response);
        }

        using var other = new ServerFactory();
        var after = await Streams.RunAsync(other.Client, new StreamConfig(config) { Resume = point.Build(config) }, frames.Skip(moveAfter));

        Assert.Equal(Describe(uninterrupted), Describe([.. before, .. after]));
        Assert.Contains(after, r => r.Pair?.Matches.TrackIds.Count > 0);
        if (keyframes)
        {
            Assert.Contains(uninterrupted, r => r.Pair?.NewKeyframe == true);
        }
    }

    [Fact]
    public async Task Resume_WithoutTracks_NewPointsGetIdsAboveTheNextId()
    {
        var frames = Enumerable.Range(0, 3).Select(i => new Frame { Sequence = (ulong)(10 + i), Image = Render(SceneA, Pan(3f * i, 0)) }).ToArray();
        var config = new StreamConfig { TrackIds = true };
        // The last matched pair (9, 10) had no matches; ids up to 4999 were given before.
        var resume = new StreamResume { Reference = frames[0], Tracks = new TrackState { LastPair = new PairMatches { Sequence0 = 9, Sequence1 = 10 }, NextTrackId = 5000 } };

        var after = await Streams.RunAsync(_server.Client, new StreamConfig(config) { Resume = resume }, frames.Skip(1));

        // No FIRST_FRAME: frame 11 pairs with the reference at once.
        Assert.Equal(10ul, after[0].Pair?.Sequence0);
        Assert.All(after[0].Pair.Matches.TrackIds, id => Assert.True(id >= 5000, $"id {id} is below the next id"));
    }

    [Theory]
    [InlineData("no reference")]
    [InlineData("reference not an image")]
    [InlineData("tracks without track ids")]
    [InlineData("points and ids disagree")]
    [InlineData("pair out of order")]
    [InlineData("id twice")]
    [InlineData("id zero")]
    [InlineData("next id not above the ids")]
    public async Task Resume_BadData_InvalidArgumentNamingTheField(string name)
    {
        var (config, field) = BadResumes()[name];
        using var call = _server.Client.MatchStream(deadline: Limits.Deadline);
        try
        {
            await call.RequestStream.WriteAsync(new StreamRequest { Config = config });
        }
        catch (RpcException)
        {
            // The config carries a frame: the server may answer before the client has finished writing it.
        }

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));

        Assert.True(StatusCode.InvalidArgument == error.StatusCode, $"{name}: {error.StatusCode} {error.Status.Detail}");
        Assert.Contains(field, error.Status.Detail, StringComparison.Ordinal);
    }

    private static Dictionary<string, (StreamConfig Config, string Field)> BadResumes()
    {
        var frame = new Frame { Sequence = 7, Image = Render(SceneA, Pan(0, 0)) };
        static PairMatches Points(ulong sequence0, ulong[] ids, params float[] xy) => new()
        {
            Sequence0 = sequence0,
            Sequence1 = 7,
            Matches = new Matches { Count = (uint)ids.Length, Keypoints0 = { xy[..(xy.Length / 2)] }, Keypoints1 = { xy[(xy.Length / 2)..] }, TrackIds = { ids } },
        };
        var tracks = new TrackState { LastPair = Points(6, [9], 1, 2, 3, 4), NextTrackId = 10 };
        StreamConfig With(StreamResume resume, bool trackIds = true) => new() { TrackIds = trackIds, Resume = resume };
        return new Dictionary<string, (StreamConfig, string)>
        {
            ["no reference"] = (With(new StreamResume { Tracks = tracks }), "StreamConfig.resume.reference.image is missing"),
            ["reference not an image"] = (With(new StreamResume { Reference = new Frame { Sequence = 7, Image = new Image { Raw = new RawImage { Format = PixelFormat.Gray8, Width = 4, Height = 4, Data = ByteString.CopyFrom(new byte[3]) } } } }), "StreamConfig.resume.reference.image cannot be used"),
            ["tracks without track ids"] = (With(new StreamResume { Reference = frame, Tracks = tracks }, trackIds: false), "StreamConfig.resume.tracks is set, but StreamConfig.track_ids is off"),
            ["points and ids disagree"] = (With(new StreamResume { Reference = frame, Tracks = new TrackState(tracks) { LastPair = Points(6, [9, 11], 1, 2, 3, 4), NextTrackId = 12 } }), "StreamConfig.resume.tracks.last_pair.matches must hold two keypoint values per track id"),
            ["pair out of order"] = (With(new StreamResume { Reference = frame, Tracks = new TrackState(tracks) { LastPair = Points(7, [9], 1, 2, 3, 4) } }), "StreamConfig.resume.tracks.last_pair.sequence1 (7) must be greater than sequence0 (7)"),
            ["id twice"] = (With(new StreamResume { Reference = frame, Tracks = new TrackState(tracks) { LastPair = Points(6, [9, 9], 1, 2, 5, 6, 3, 4, 7, 8) } }), "StreamConfig.resume.tracks.last_pair.matches.track_ids holds 9 twice"),
            ["id zero"] = (With(new StreamResume { Reference = frame, Tracks = new TrackState(tracks) { LastPair = Points(6, [0], 1, 2, 3, 4) } }), "StreamConfig.resume.tracks.last_pair.matches.track_ids holds 0"),
            ["next id not above the ids"] = (With(new StreamResume { Reference = frame, Tracks = new TrackState(tracks) { NextTrackId = 9 } }), "StreamConfig.resume.tracks.next_track_id (9) must be greater than every track id"),
        };
    }

    [Fact]
    public async Task ResumePoint_BeforeAnyUsableAnswer_SaysThereIsNothingToResume()
    {
        var point = new StreamResumePoint(new StreamConfig());
        point.Sent(new Frame { Sequence = 3 });
        point.Answered(new StreamResponse { Status = new FrameStatus { Sequence = 3, Code = FrameStatusCode.Invalid } });

        var error = Assert.Throws<InvalidOperationException>(() => point.Build(new StreamConfig()));

        Assert.Contains("the last answered was 3", error.Message, StringComparison.Ordinal);
        Assert.False(point.CanResume);
        await Task.CompletedTask;
    }

    /// <summary>Everything an answer says but its timings: exact floats, so "the same" means the same.</summary>
    private static string[] Describe(List<StreamResponse> responses) =>
    [
        .. responses.Select(r => r.Pair is { } p
            ? string.Create(CultureInfo.InvariantCulture,
                $"{p.Sequence0}->{p.Sequence1} t={p.Timestamp0Us},{p.Timestamp1Us} key={p.NewKeyframe} n={p.Matches.Count} s=[{string.Join(',', p.Matches.Scores.Select(BitConverter.SingleToInt32Bits))}] k0=[{string.Join(',', p.Matches.Keypoints0.Select(BitConverter.SingleToInt32Bits))}] k1=[{string.Join(',', p.Matches.Keypoints1.Select(BitConverter.SingleToInt32Bits))}] ids=[{string.Join(',', p.Matches.TrackIds)}]")
            : $"{r.Status.Sequence} {r.Status.Code}"),
    ];

    private static Matrix3x2 Pan(float x, float y) => Matrix3x2.CreateTranslation(80 + x, 60 + y);

    private static Image Render(TexturedScene scene, Matrix3x2 view)
    {
        var (width, height) = (TestServerSettings.ModelWidth, TestServerSettings.ModelHeight);
        var gray = new byte[width * height];
        scene.RenderGray(width, height, view, gray);
        return new Image { Raw = new RawImage { Format = PixelFormat.Gray8, Width = (uint)width, Height = (uint)height, Data = ByteString.CopyFrom(gray) } };
    }
}
