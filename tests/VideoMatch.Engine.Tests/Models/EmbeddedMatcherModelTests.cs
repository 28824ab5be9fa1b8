using System.Numerics;
using Microsoft.Extensions.Logging.Abstractions;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;
using VideoMatch.Synthetic;

namespace VideoMatch.Engine.Tests.Models;

public sealed class EmbeddedMatcherModelTests
{
    private const int ModelWidth = 320;
    private const int ModelHeight = 256;

    [Theory]
    [InlineData(3.0f, -2.0f)]
    [InlineData(0.4f, 0.7f)]
    [InlineData(-6.3f, 4.6f)]
    [InlineData(11.5f, -9.25f)]
    public void Match_TranslatedFrames_RecoversShiftPerMatch(float dx, float dy)
    {
        var scene = new TexturedScene(seed: 3);
        var view0 = Matrix3x2.CreateTranslation(100, 80);
        var view1 = Matrix3x2.CreateTranslation(100 - dx, 80 - dy);

        var result = MatchOnce(scene, view0, view1, ModelWidth, ModelHeight);

        Assert.True(result.Count > 500, $"only {result.Count} matches");
        var errors = Errors(result, view0, view1);
        var within = errors.Count(e => e < 1f);
        Assert.True(within >= 0.95 * result.Count, $"{within}/{result.Count} matches within 1 px; median error {Median(errors):F2}");
        Assert.True(Median(errors) < 0.25f, $"median error {Median(errors):F3} px");
    }

    [Fact]
    public void Match_RotatedFrames_MatchesAgreeWithTrueMotion()
    {
        var scene = new TexturedScene(seed: 5);
        var view0 = Matrix3x2.CreateTranslation(50, 50);
        var view1 = Matrix3x2.CreateRotation(3f * MathF.PI / 180f, new Vector2(ModelWidth / 2f, ModelHeight / 2f)) * view0;

        var result = MatchOnce(scene, view0, view1, ModelWidth, ModelHeight);

        Assert.True(result.Count > 500, $"only {result.Count} matches");
        var errors = Errors(result, view0, view1);
        var within = errors.Count(e => e < 1.5f);
        Assert.True(within >= 0.9 * result.Count, $"{within}/{result.Count} matches within 1.5 px; median {Median(errors):F2}");
    }

    internal static PairMatchResult MatchOnce(TexturedScene scene, Matrix3x2 view0, Matrix3x2 view1, int width, int height)
    {
        using var matcher = ModelLoader.Open(new InferenceOptions { EmbeddedWidth = width, EmbeddedHeight = height }, 1);
        var preparer = new FramePreparer(width, height, 4096);
        var pixels = new byte[width * height * 3];
        scene.RenderRgb(width, height, view0, pixels);
        var frame0 = preparer.Prepare(FrameInput.Raw(FramePixelFormat.Rgb24, width, height, 0, pixels));
        scene.RenderRgb(width, height, view1, pixels);
        var frame1 = preparer.Prepare(FrameInput.Raw(FramePixelFormat.Rgb24, width, height, 0, pixels));
        var pair = new PairInput(frame0, frame1, 0.2f, 0);
        var results = new PairMatchResult[1];
        matcher.Match([pair], results);
        return results[0];
    }

    internal static float[] Errors(PairMatchResult result, Matrix3x2 view0, Matrix3x2 view1)
    {
        var errors = new float[result.Count];
        for (var i = 0; i < result.Count; i++)
        {
            var expected = TexturedScene.Map(new Vector2(result.Keypoints0[2 * i], result.Keypoints0[2 * i + 1]), view0, view1);
            errors[i] = Vector2.Distance(expected, new Vector2(result.Keypoints1[2 * i], result.Keypoints1[2 * i + 1]));
        }

        return errors;
    }

    internal static float Median(float[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? float.NaN : sorted[sorted.Length / 2];
    }
}
