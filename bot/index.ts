export { createTelegramBot, saveFiles, type TelegramBot, type TelegramBotOptions, type TelegramFile } from "./bot.ts";
export { escapeHtml, markdownToTelegramHtml, splitForTelegram } from "./format.ts";
